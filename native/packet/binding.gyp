{
  "targets": [
    {
      "target_name": "wasmvs_packet",
      "include_dirs": ["../common"],
      "sources": ["packet_io.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
