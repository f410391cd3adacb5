"""The cohort check an analyst would write in pandas without this toolkit: the baseline for
bench/plan.py.

    python bench/plan_baseline_pandas.py EXTRACT COHORT_YAML [--out RESULT.json]

EXTRACT is a Landis+Gyr IOC long extract (cp1252, `;`, one row per device); COHORT_YAML a
cohort rule file (cohorts/ioc.yaml). It reads the file with pandas (every column a string),
normalises the columns with pandas string methods, then loops over installations with
`df.groupby("Site ID")`, applying per installation the checks migrate/validate.py makes, and
writes every installation's verdict and reasons as JSON. The last line on stdout is its counts
as one JSON object with the keys of `migrate plan --json`, so that the bench can compare them.

It is deliberately plain, not deliberately slow: column-wise normalisation, pre-computed sets
for the cross-installation checks, and each group walked once with `itertuples` (the fastest of
the usual ways to loop over a group's rows). It does not import `migrate`: it is the script
written instead of the toolkit. Rows pandas cannot parse (a field too many) are skipped, and
installation dates are not checked, as such a script would: see bench/README.md for how its
counts differ from the toolkit's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import yaml

# The export's words for device types and modes, in the DCC's terms.
DEVICE_TYPES = {
    "Comms Hub": "CHF",
    "Electricity Meter": "ESME",
    "Gas Meter": "GSME",
    "In Home Display": "IHD",
    "Prepayment Interface": "PPMID",
}
MODES = {"Live": "ACTIVE", "Dormant": "DORMANT"}
SLOTS = ("CHF", "ESME", "GSME", "PPMID")  # the device types a combination names
METERS = {"ESME", "GSME", "GPF"}  # devices that must carry their MPAN or MPRN
# Type 2 devices (no firmware) are set aside by the combination rule.
TYPE2 = {"IHD", "CAD"}
# The IOC export comes from the Landis+Gyr SMSO; the file does not say so itself.
EXTRACT_SMSO = "LG-SMSO"
MPAN_WEIGHTS = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
DOTTED = re.compile(r"\d{1,4}(?:\.\d{1,4}){0,3}")
# Reasons in the order the toolkit lists them, so the result files read alike.
REASON_ORDER = (
    "DATA_INVALID",
    "NO_COMMS_HUB",
    "MULTIPLE_COMMS_HUBS",
    "MPXN_MISSING",
    "DUPLICATE_DEVICE",
    "DUPLICATE_MPXN",
    "WRONG_SMSO",
    "DORMANT",
    "NOT_DORMANT",
    "MODE_UNKNOWN",
    "DMC_NOT_ELIGIBLE",
    "FIRMWARE_UPGRADE_REQUIRED",
    "FIRMWARE_NOT_LISTED",
    "FIRMWARE_UNRECOGNISED",
    "COMBINATION_NOT_LISTED",
    "COMBINATION_NOT_YET_LISTED",
)
DEVICE_LEVEL = {
    "DMC_NOT_ELIGIBLE",
    "FIRMWARE_UPGRADE_REQUIRED",
    "FIRMWARE_NOT_LISTED",
    "FIRMWARE_UNRECOGNISED",
}


def valid_mpan(value: str) -> bool:
    """13 digits whose last is the check digit: weighted sum of the first 12, mod 11, mod 10."""
    if len(value) != 13 or not value.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:12], MPAN_WEIGHTS, strict=True))
    return total % 11 % 10 == int(value[12])


def firmware_key(version: str) -> tuple[int, ...] | None:
    """Dotted numeric version as a comparable tuple (2.1 == 2.1.0); None if not dotted."""
    if not DOTTED.fullmatch(version):
        return None
    parts = [int(p) for p in version.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


class Cohort:
    """The parts of a cohort rule file the checks need, as sets and dicts for the loop."""

    def __init__(self, path: Path) -> None:
        rules = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.smso = set(rules["smso"])
        self.modes = set(rules["modes"])
        self.as_of = dt.date.fromisoformat(str(rules["window"]["start"]))
        orders = {name.lower(): scheme for name, scheme in rules["firmware_order"].items()}
        # (smso, frozenset of (slot, manufacturer, model, firmware)) -> (id, first listed)
        self.combinations: dict[tuple[str, frozenset], tuple[str, dt.date]] = {}
        self.listed_firmware: set[tuple[str, str, str, str]] = set()
        # (slot, manufacturer, model) -> newest listed firmware
        self.newest: dict[tuple[str, str, str], tuple[int, ...] | None] = {}
        for combination in rules.get("combinations") or []:
            devices = set()
            for slot, device in combination["devices"].items():
                manufacturer = device["manufacturer"].lower()
                if orders.get(manufacturer) != "dotted":
                    sys.exit(f"only dotted firmware order is supported, not for {manufacturer}")
                model_key = (slot, manufacturer, device["model"])
                firmware = str(device["firmware"])
                devices.add((*model_key, firmware))
                self.listed_firmware.add((*model_key, firmware))
                key = firmware_key(firmware)
                newest = self.newest.get(model_key)
                if key is not None and (newest is None or key > newest):
                    self.newest[model_key] = key
                else:
                    self.newest.setdefault(model_key, None)
            first_listed = dt.date.fromisoformat(str(combination["first_listed"]))
            signature = (combination["smso"], frozenset(devices))
            self.combinations[signature] = (combination["id"], first_listed)


def load(path: Path) -> tuple[pd.DataFrame, int, int]:
    """The extract, normalised column by column; rows read and exact duplicates dropped."""
    df = pd.read_csv(
        path,
        sep=";",
        encoding="cp1252",
        dtype=str,
        keep_default_na=False,  # blanks stay "" rather than NaN
        on_bad_lines="skip",  # a row with a field too many cannot be read
    )
    rows_read = len(df)
    df = df.drop_duplicates()
    duplicates = rows_read - len(df)

    df["type"] = df["Device Type"].str.strip().map(DEVICE_TYPES)  # NaN: unknown type
    eui = df["Device EUI"].str.strip().str.upper().str.replace(r"[-:\s]", "", regex=True)
    eui_ok = eui.str.fullmatch(r"[0-9A-F]{16}")
    df["eui"] = eui.str.replace(r"(..)(?!$)", r"\1-", regex=True).where(eui_ok, "")
    df["make"] = df["Make"].str.strip()
    df["model"] = df["Model"].str.strip()
    df["firmware"] = df["Firmware"].str.strip().str.removeprefix("V")
    df["mode"] = df["Status"].str.strip().map(MODES).fillna("")

    # MPxN: an MPAN core on electricity meters and on hubs that carry 13 digits, else an MPRN.
    value = df["MPxN"].str.strip()
    thirteen = value.str.fullmatch(r"\d{13}")
    mprn_shape = value.str.fullmatch(r"\d{6,10}")
    is_hub = df["type"] == "CHF"
    as_mpan = (df["type"] == "ESME") | (is_hub & thirteen)
    as_mprn = (df["type"] == "GSME") | (is_hub & ~thirteen)
    mpan_ok = value.where(as_mpan, "").map(valid_mpan)
    bad_mpxn = (value != "") & ((as_mpan & ~mpan_ok) | (as_mprn & ~mprn_shape))
    mpxn = value.where(~bad_mpxn, "")
    df["mpxn"] = mpxn
    df["mpan"] = mpxn.where(as_mpan, "")
    df["mprn"] = mpxn.where(as_mprn, "")
    # A row with a value that cannot be trusted: its installation is incomplete.
    df["bad"] = df["type"].isna() | (df["eui"] == "") | bad_mpxn
    df["type"] = df["type"].fillna("")
    return df, rows_read, duplicates


def check(df: pd.DataFrame, cohort: Cohort) -> list[dict[str, object]]:
    """Every reason that applies to every installation: one pass over installations."""
    valid = df[~df["bad"]]
    eui_counts = valid["eui"].value_counts()
    repeated_euis = set(eui_counts.index[eui_counts > 1])
    columns = ["Site ID", "type", "eui", "make", "model", "firmware", "mpxn", "mpan", "mprn"]
    columns += ["mode", "bad"]
    smso = EXTRACT_SMSO

    results = []
    mpan_sites: dict[str, list[int]] = defaultdict(list)
    mprn_sites: dict[str, list[int]] = defaultdict(list)
    for installation_id, group in df[columns].groupby("Site ID"):
        reasons = set()
        slots: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        hubs = 0
        mode = None
        unlistable = False
        mpan = {"ESME": "", "CHF": ""}
        mprn = {"GSME": "", "CHF": ""}
        for row in group.itertuples(index=False, name=None):
            _, kind, eui, make, model, firmware, mpxn, row_mpan, row_mprn, row_mode, bad = row
            if mode is None:
                mode = row_mode
            if bad:
                reasons.add("DATA_INVALID")
                continue
            if kind == "CHF":
                hubs += 1
            if kind in mpan and row_mpan and not mpan[kind]:
                mpan[kind] = row_mpan
            if kind in mprn and row_mprn and not mprn[kind]:
                mprn[kind] = row_mprn
            if kind in METERS and not mpxn:
                reasons.add("MPXN_MISSING")
            if eui in repeated_euis:
                reasons.add("DUPLICATE_DEVICE")
            if kind in TYPE2:
                continue
            if kind not in SLOTS:
                unlistable = True
                continue
            model_key = (kind, make.lower(), model)
            slots[kind].append((*model_key, firmware))
            if model_key not in cohort.newest:
                reasons.add("DMC_NOT_ELIGIBLE")
            elif (*model_key, firmware) not in cohort.listed_firmware:
                placed = firmware_key(firmware)
                newest = cohort.newest[model_key]
                if placed is None:
                    reasons.add("FIRMWARE_UNRECOGNISED")
                elif newest is not None and placed < newest:
                    reasons.add("FIRMWARE_UPGRADE_REQUIRED")
                else:
                    reasons.add("FIRMWARE_NOT_LISTED")

        if hubs == 0:
            reasons.add("NO_COMMS_HUB")
        elif hubs > 1:
            reasons.add("MULTIPLE_COMMS_HUBS")
        if smso not in cohort.smso:
            reasons.add("WRONG_SMSO")
        if not mode:
            reasons.add("MODE_UNKNOWN")
        elif mode == "DORMANT" and "DORMANT" not in cohort.modes:
            reasons.add("DORMANT")
        elif mode == "ACTIVE" and "ACTIVE" not in cohort.modes:
            reasons.add("NOT_DORMANT")

        combination = None
        if not unlistable and all(len(devices) == 1 for devices in slots.values()):
            signature = (smso, frozenset(devices[0] for devices in slots.values()))
            combination = cohort.combinations.get(signature)
        if combination is None:
            if not reasons & DEVICE_LEVEL:
                reasons.add("COMBINATION_NOT_LISTED")
        elif combination[1] > cohort.as_of:
            reasons.add("COMBINATION_NOT_YET_LISTED")

        index = len(results)
        installation_mpan = mpan["ESME"] or mpan["CHF"]
        installation_mprn = mprn["GSME"] or mprn["CHF"]
        if installation_mpan:
            mpan_sites[installation_mpan].append(index)
        if installation_mprn:
            mprn_sites[installation_mprn].append(index)
        results.append(
            {
                "installation_id": installation_id,
                "mpan_core": installation_mpan or None,
                "mprn": installation_mprn or None,
                "reasons": reasons,
                "combination": combination[0] if combination else None,
            }
        )

    # An MPAN or MPRN on two installations: neither can be trusted.
    for sites in (mpan_sites, mprn_sites):
        for indexes in sites.values():
            if len(indexes) > 1:
                for index in indexes:
                    results[index]["reasons"].add("DUPLICATE_MPXN")
    for result in results:
        reasons = result["reasons"]
        result["eligible"] = not reasons
        result["reasons"] = [reason for reason in REASON_ORDER if reason in reasons]
        if reasons:
            result["combination"] = None
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extract", type=Path, help="Landis+Gyr IOC long extract")
    parser.add_argument("cohort", type=Path, help="cohort rule file (YAML)")
    parser.add_argument(
        "--out", type=Path, default=Path("plan_baseline.json"), help="result file (JSON)"
    )
    args = parser.parse_args(argv)

    cohort = Cohort(args.cohort)
    df, rows_read, duplicates = load(args.extract)
    results = check(df, cohort)
    by_reason = Counter(reason for result in results for reason in result["reasons"])
    eligible = sum(1 for result in results if result["eligible"])
    summary = {
        "installations": len(results),
        "eligible": eligible,
        "excluded": len(results) - eligible,
        "excluded_by_reason": dict(sorted(by_reason.items())),
        "rows_read": rows_read,
        "duplicates": duplicates,
        "rows_invalid": int(df["bad"].sum()),
    }
    with args.out.open("w", encoding="utf-8") as handle:
        json.dump({"summary": summary, "installations": results}, handle)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
