{
  "targets": [
    {
      "target_name": "relay",
      "include_dirs": ["../common"],
      "sources": ["relay.cc"],
      "cflags_cc": ["-O2", "-fno-exceptions", "-std=c++17"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
