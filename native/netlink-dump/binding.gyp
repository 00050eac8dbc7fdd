{
  "targets": [{
    "target_name": "netlink_dump",
    "sources": ["netlink_dump.cc"],
    "cflags": ["-O2", "-Wall"],
    "cflags_cc": ["-O2", "-Wall", "-std=c++17"]
  }]
}
