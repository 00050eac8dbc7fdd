// The calibration the simulator uses when no host measurement is available (no root, or `wasmvs sim`
// without a report): fitted from a `bench/scaling.ts --full` run on the development machine. A run of
// the benchmark writes its own calibration to report/scaling/calibration.json, which `wasmvs sim` prefers.
import type { Calibration } from "./model.ts";

export const DEFAULT_CALIBRATION: Calibration = {
  "machine": "Intel(R) Xeon(R) Processor ×2",
  "date": "2026-12-02T15:50:59.322Z",
  "modes": [
    {
      "mode": "iptables-legacy",
      "kind": "rule-walk",
      "latency": {
        "model": "hinge",
        "coef": [
          11.411575085103909,
          0.004273518488022966,
          0.02213242911657882,
          3316
        ],
        "points": 8,
        "looMeanAbsErrPct": 25.833121998297113,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 37.04888565428274
          },
          {
            "model": "hinge",
            "looMeanAbsErrPct": 25.833121998297113
          }
        ]
      },
      "cpu": {
        "model": "hinge",
        "coef": [
          13.627336428779504,
          0.003465846879955771,
          0.022552521417051618,
          3316
        ],
        "points": 8,
        "looMeanAbsErrPct": 24.565801587286813,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 37.24663256061032
          },
          {
            "model": "hinge",
            "looMeanAbsErrPct": 24.565801587286813
          }
        ]
      },
      "sync": {
        "model": "power",
        "coef": [
          0.0006347260377735528,
          1.2668765746012174
        ],
        "points": 4,
        "looMeanAbsErrPct": 23.614761357405953,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 31.784702884435134
          },
          {
            "model": "power",
            "looMeanAbsErrPct": 23.614761357405953
          },
          {
            "model": "quadratic",
            "looMeanAbsErrPct": 34.00426878336681
          }
        ]
      },
      "incremental": {
        "model": "quadratic",
        "coef": [
          38.02598094651317,
          0.001963382050442701,
          4.278588565098751e-8
        ],
        "points": 4,
        "looMeanAbsErrPct": 5.859419795034808,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 17.90393702276782
          },
          {
            "model": "power",
            "looMeanAbsErrPct": 29.37163317828403
          },
          {
            "model": "quadratic",
            "looMeanAbsErrPct": 5.859419795034808
          }
        ]
      },
      "baselineLatency": 7.373,
      "baselineCpu": 12.808,
      "rulesPerService": 12.7426,
      "measuredN": [
        1000,
        2000,
        5000,
        10000
      ],
      "source": "measured on the development machine (node --import tsx bench/scaling.ts --full --out=/tmp/report-full, 2026-12-02), 2 endpoints per Service",
      "units": "host"
    },
    {
      "mode": "iptables-nft",
      "kind": "rule-walk",
      "latency": {
        "model": "hinge",
        "coef": [
          10.472593634480289,
          0.009775368886539638,
          0.004154075979535778,
          3316
        ],
        "points": 8,
        "looMeanAbsErrPct": 6.938398770482335,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 9.535688812703379
          },
          {
            "model": "hinge",
            "looMeanAbsErrPct": 6.938398770482335
          }
        ]
      },
      "cpu": {
        "model": "hinge",
        "coef": [
          15.37297809690242,
          0.005270561175223409,
          0.010788657370055191,
          1374
        ],
        "points": 8,
        "looMeanAbsErrPct": 17.92587923971175,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 23.47265580463202
          },
          {
            "model": "hinge",
            "looMeanAbsErrPct": 17.92587923971175
          }
        ]
      },
      "sync": {
        "model": "power",
        "coef": [
          8.225380783111465e-9,
          2.6323505257769417
        ],
        "points": 4,
        "looMeanAbsErrPct": 38.50214787735863,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 79.15029470691198
          },
          {
            "model": "power",
            "looMeanAbsErrPct": 38.50214787735863
          },
          {
            "model": "quadratic",
            "looMeanAbsErrPct": 50.89609154556658
          }
        ]
      },
      "incremental": {
        "model": "quadratic",
        "coef": [
          35.36276686372595,
          0.0001513248591110422,
          1.050424080440204e-7
        ],
        "points": 4,
        "looMeanAbsErrPct": 3.160612527632729,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 41.34146019351955
          },
          {
            "model": "power",
            "looMeanAbsErrPct": 33.403845144808514
          },
          {
            "model": "quadratic",
            "looMeanAbsErrPct": 3.160612527632729
          }
        ]
      },
      "baselineLatency": 7.336,
      "baselineCpu": 10.2545,
      "rulesPerService": 12.7426,
      "measuredN": [
        1000,
        2000,
        5000,
        10000
      ],
      "source": "measured on the development machine (node --import tsx bench/scaling.ts --full --out=/tmp/report-full, 2026-12-02), 2 endpoints per Service",
      "units": "host"
    },
    {
      "mode": "nftables",
      "kind": "verdict-map",
      "latency": {
        "model": "linear",
        "coef": [
          11.237010343460655,
          0
        ],
        "points": 8,
        "looMeanAbsErrPct": 2.9058956962297238,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 2.9058956962297238
          },
          {
            "model": "hinge",
            "looMeanAbsErrPct": 3.099902503977197
          }
        ]
      },
      "cpu": {
        "model": "linear",
        "coef": [
          14.946138330064349,
          0
        ],
        "points": 8,
        "looMeanAbsErrPct": 2.1560112859872884,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 2.1560112859872884
          },
          {
            "model": "hinge",
            "looMeanAbsErrPct": 2.2551323154842904
          }
        ]
      },
      "sync": {
        "model": "quadratic",
        "coef": [
          0,
          0,
          0.0000051483685292873316
        ],
        "points": 4,
        "looMeanAbsErrPct": 14.412468923090096,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 85.71945841479575
          },
          {
            "model": "power",
            "looMeanAbsErrPct": 23.682052198457626
          },
          {
            "model": "quadratic",
            "looMeanAbsErrPct": 14.412468923090096
          }
        ]
      },
      "incremental": {
        "model": "quadratic",
        "coef": [
          20.358827007833376,
          0.00032298973572497116,
          3.328799233428115e-8
        ],
        "points": 4,
        "looMeanAbsErrPct": 25.96220014243607,
        "candidates": [
          {
            "model": "linear",
            "looMeanAbsErrPct": 29.703299473555155
          },
          {
            "model": "power",
            "looMeanAbsErrPct": 38.1398359411975
          },
          {
            "model": "quadratic",
            "looMeanAbsErrPct": 25.96220014243607
          }
        ]
      },
      "baselineLatency": 7.451,
      "baselineCpu": 10.6245,
      "rulesPerService": 9.4706,
      "measuredN": [
        1000,
        2000,
        5000,
        10000
      ],
      "source": "measured on the development machine (node --import tsx bench/scaling.ts --full --out=/tmp/report-full, 2026-12-02), 2 endpoints per Service",
      "units": "host"
    }
  ]
};
