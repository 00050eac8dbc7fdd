// The calibration the simulator uses when no host measurement is available (no root, or `wasmvs sim`
// without a report): fitted from a `bench/scaling.ts --full` run on the development machine. A run of
// the benchmark writes its own calibration to report/scaling/calibration.json, which `wasmvs sim` prefers.
import type { Calibration } from "./model.ts";

export const DEFAULT_CALIBRATION: Calibration = {
  machine: "Intel(R) Xeon(R) Processor ×2",
  date: "2026-12-02T16:26:25.859Z",
  modes: [
    {
      mode: "iptables-legacy",
      kind: "rule-walk",
      latency: {
        model: "hinge",
        coef: [12.028897728807419, 0.0045417118721689095, 0.022703456673797265, 3316],
        points: 8,
        looMeanAbsErrPct: 30.73315482192362,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 36.33219786732377,
          },
          {
            model: "hinge",
            looMeanAbsErrPct: 30.73315482192362,
          },
        ],
      },
      cpu: {
        model: "hinge",
        coef: [14.091813959605744, 0.00400109655710954, 0.021994482557686445, 3316],
        points: 8,
        looMeanAbsErrPct: 21.622242316767476,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 35.66642241074138,
          },
          {
            model: "hinge",
            looMeanAbsErrPct: 21.622242316767476,
          },
        ],
      },
      sync: {
        model: "quadratic",
        coef: [0, 0.006380768302567238, 7.043609581141054e-8],
        points: 4,
        looMeanAbsErrPct: 2.006530434993789,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 30.46504242709591,
          },
          {
            model: "power",
            looMeanAbsErrPct: 11.736987053017138,
          },
          {
            model: "quadratic",
            looMeanAbsErrPct: 2.006530434993789,
          },
        ],
      },
      incremental: {
        model: "power",
        coef: [0.0002273507799410111, 1.2985159897157432],
        points: 4,
        looMeanAbsErrPct: 11.92478026337978,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 26.39459052091033,
          },
          {
            model: "power",
            looMeanAbsErrPct: 11.92478026337978,
          },
          {
            model: "quadratic",
            looMeanAbsErrPct: 17.536659274793603,
          },
        ],
      },
      baselineLatency: 7.409,
      baselineCpu: 10.83375,
      rulesPerService: 12.7426,
      measuredN: [1000, 2000, 5000, 10000],
      source:
        "measured on the development machine (node --import tsx bench/scaling.ts --full, 2026-12-02), 2 " +
        "endpoints per Service",
      units: "host",
    },
    {
      mode: "iptables-nft",
      kind: "rule-walk",
      latency: {
        model: "linear",
        coef: [10.235807375820503, 0.011420113431520018],
        points: 8,
        looMeanAbsErrPct: 7.224415483709638,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 7.224415483709638,
          },
          {
            model: "hinge",
            looMeanAbsErrPct: 7.1715687629768645,
          },
        ],
      },
      cpu: {
        model: "hinge",
        coef: [15.624000615805912, 0.0054920760244976064, 0.011401204605474616, 1374],
        points: 8,
        looMeanAbsErrPct: 12.61525721411973,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 20.543341514823624,
          },
          {
            model: "hinge",
            looMeanAbsErrPct: 12.61525721411973,
          },
        ],
      },
      sync: {
        model: "power",
        coef: [1.298245362809105e-8, 2.5927026058369766],
        points: 4,
        looMeanAbsErrPct: 36.24120851121911,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 79.32258097076428,
          },
          {
            model: "power",
            looMeanAbsErrPct: 36.24120851121911,
          },
          {
            model: "quadratic",
            looMeanAbsErrPct: 50.37384064577258,
          },
        ],
      },
      incremental: {
        model: "quadratic",
        coef: [35.75392323991082, 0.0006909343599008341, 1.0308225292063712e-7],
        points: 4,
        looMeanAbsErrPct: 13.621855738506646,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 37.510385607431076,
          },
          {
            model: "power",
            looMeanAbsErrPct: 33.53835190044717,
          },
          {
            model: "quadratic",
            looMeanAbsErrPct: 13.621855738506646,
          },
        ],
      },
      baselineLatency: 7.4,
      baselineCpu: 11.24525,
      rulesPerService: 12.7426,
      measuredN: [1000, 2000, 5000, 10000],
      source:
        "measured on the development machine (node --import tsx bench/scaling.ts --full, 2026-12-02), 2 " +
        "endpoints per Service",
      units: "host",
    },
    {
      mode: "nftables",
      kind: "verdict-map",
      latency: {
        model: "linear",
        coef: [11.570656904718566, 0],
        points: 8,
        looMeanAbsErrPct: 1.0132062653003862,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 1.0132062653003862,
          },
          {
            model: "hinge",
            looMeanAbsErrPct: 1.0132062653003862,
          },
        ],
      },
      cpu: {
        model: "linear",
        coef: [15.438382629326771, 0.000013970468969639154],
        points: 8,
        looMeanAbsErrPct: 2.836320268126573,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 2.836320268126573,
          },
          {
            model: "hinge",
            looMeanAbsErrPct: 2.7032966030117844,
          },
        ],
      },
      sync: {
        model: "quadratic",
        coef: [0, 0, 0.000005353708723407426],
        points: 4,
        looMeanAbsErrPct: 16.72932020049739,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 81.54999243864248,
          },
          {
            model: "power",
            looMeanAbsErrPct: 29.371389232006564,
          },
          {
            model: "quadratic",
            looMeanAbsErrPct: 16.72932020049739,
          },
        ],
      },
      incremental: {
        model: "quadratic",
        coef: [10.323566117889868, 0.0009012887624482502, 3.109674389697134e-8],
        points: 4,
        looMeanAbsErrPct: 6.257321946399889,
        candidates: [
          {
            model: "linear",
            looMeanAbsErrPct: 23.506443145371023,
          },
          {
            model: "power",
            looMeanAbsErrPct: 27.861383253155466,
          },
          {
            model: "quadratic",
            looMeanAbsErrPct: 6.257321946399889,
          },
        ],
      },
      baselineLatency: 7.483,
      baselineCpu: 10.8355,
      rulesPerService: 9.4706,
      measuredN: [1000, 2000, 5000, 10000],
      source:
        "measured on the development machine (node --import tsx bench/scaling.ts --full, 2026-12-02), 2 " +
        "endpoints per Service",
      units: "host",
    },
  ],
};
