// The calibration the simulator uses when no host measurement is available (no root, or `wasmvs sim`
// without a report): fitted from a `bench/scaling.ts --full` run on the development machine. A run of
// the benchmark writes its own calibration to report/scaling/calibration.json, which `wasmvs sim` prefers.
import type { Calibration } from "./model.ts";

export const DEFAULT_CALIBRATION: Calibration = {
  "machine": "AMD EPYC ×2, kernel 6.18, iptables 1.8.9, nft 1.0.6",
  "date": "2026-11-22T00:57:48.306Z",
  "modes": [
    {
      "mode": "iptables-legacy",
      "kind": "rule-walk",
      "latency": {
        "a": 28.67694549676725,
        "b": 0.003432759741872963,
        "points": 8
      },
      "cpu": {
        "a": 37.0237226793747,
        "b": 0.004004042239252741,
        "points": 8
      },
      "sync": {
        "a": 0.000006170853694118122,
        "k": 1.7092866336766244,
        "points": 4
      },
      "incremental": {
        "a": 0.0001908330372742115,
        "k": 1.336942593075058,
        "points": 4
      },
      "baselineLatency": 20,
      "baselineCpu": 28.197,
      "rulesPerService": 12.7426,
      "measuredN": [
        1000,
        2000,
        5000,
        10000
      ],
      "source": "measured on the development machine (node --import tsx bench/scaling.ts --full), 2 endpoints per Service",
      "units": "host"
    },
    {
      "mode": "iptables-nft",
      "kind": "rule-walk",
      "latency": {
        "a": 29.39233100777782,
        "b": 0.01784157196536916,
        "points": 6
      },
      "cpu": {
        "a": 36.86045670861624,
        "b": 0.014999131411483893,
        "points": 6
      },
      "sync": {
        "a": 8.18657511813698e-7,
        "k": 2.1533234771506793,
        "points": 3
      },
      "incremental": {
        "a": 0.0011388715253594424,
        "k": 1.179083538609323,
        "points": 3
      },
      "baselineLatency": 19.53,
      "baselineCpu": 27.171333333333333,
      "rulesPerService": 12.6958,
      "measuredN": [
        1000,
        2000,
        5000
      ],
      "source": "measured on the development machine (node --import tsx bench/scaling.ts --full), 2 endpoints per Service",
      "units": "host"
    },
    {
      "mode": "nftables",
      "kind": "verdict-map",
      "latency": {
        "a": 26.33676923076923,
        "b": -0.0000747884615384614,
        "points": 6
      },
      "cpu": {
        "a": 40.451692307692305,
        "b": -0.0003093012820512822,
        "points": 6
      },
      "sync": {
        "a": 0.000003197137717461922,
        "k": 2.059526357617082,
        "points": 3
      },
      "incremental": {
        "a": 0.0009204738314813783,
        "k": 1.0959645982180812,
        "points": 3
      },
      "baselineLatency": 19.849,
      "baselineCpu": 27.513333333333332,
      "rulesPerService": 9.4368,
      "measuredN": [
        1000,
        2000,
        5000
      ],
      "source": "measured on the development machine (node --import tsx bench/scaling.ts --full), 2 endpoints per Service",
      "units": "host"
    }
  ]
};
