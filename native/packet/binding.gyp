{
  "variables": {
    "wasmvs_xdp%": "<!(sh ./has-xdp.sh)"
  },
  "targets": [
    {
      "target_name": "wasmvs_packet",
      "include_dirs": ["../common"],
      "sources": ["packet_io.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"],
      "conditions": [
        ["wasmvs_xdp==1", {
          "defines": ["WASMVS_XDP"],
          "libraries": ["-lxdp", "-lbpf"]
        }]
      ]
    },
    {
      "target_name": "wasmvs_packet_plain",
      "include_dirs": ["../common"],
      "sources": ["packet_io.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
