"""The canonical model: enums and Arrow schemas every stage agrees on.

Identifiers are strings end to end (MPANs, MPRNs and serials lose digits as numbers).
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa


class DeviceType(StrEnum):
    """DCC device type codes (SMI). IHD and CAD are type 2 devices: no firmware."""

    CHF = "CHF"
    ESME = "ESME"
    GSME = "GSME"
    GPF = "GPF"
    PPMID = "PPMID"
    HCALCS = "HCALCS"
    IHD = "IHD"
    CAD = "CAD"


TYPE2_DEVICES = frozenset({DeviceType.IHD, DeviceType.CAD})


class Mode(StrEnum):
    """Active: still served by its SMSO. Dormant: lost smart service, runs in traditional mode."""

    ACTIVE = "ACTIVE"
    DORMANT = "DORMANT"


class RowReason(StrEnum):
    """Why an input row was quarantined at ingest. One row may carry several."""

    RAGGED_ROW = "RAGGED_ROW"
    MISSING_VALUE = "MISSING_VALUE"
    UNKNOWN_VALUE = "UNKNOWN_VALUE"
    INVALID_EUI64 = "INVALID_EUI64"
    INVALID_MPAN_FORMAT = "INVALID_MPAN_FORMAT"
    INVALID_MPAN_CHECK_DIGIT = "INVALID_MPAN_CHECK_DIGIT"
    UNKNOWN_MPAN_DISTRIBUTOR = "UNKNOWN_MPAN_DISTRIBUTOR"
    PRECISION_LOST = "PRECISION_LOST"
    INVALID_MPRN_FORMAT = "INVALID_MPRN_FORMAT"
    INVALID_DATE = "INVALID_DATE"
    IMPLAUSIBLE_DATE = "IMPLAUSIBLE_DATE"
    INVALID_FIRMWARE = "INVALID_FIRMWARE"
    CONFLICTING_INSTALLATION_FIELD = "CONFLICTING_INSTALLATION_FIELD"


class RowWarning(StrEnum):
    """Doubts about an accepted row: reported, never a reason to drop it."""

    MPRN_CHECK_DIGIT = "MPRN_CHECK_DIGIT"
    MSN_FORMAT = "MSN_FORMAT"
    DUPLICATE_DEVICE_ID = "DUPLICATE_DEVICE_ID"  # the same device under two rows


# Where every canonical row came from: the file and the row as a person finds it there
# (the line of a text file, the row Excel shows, the record number of a Parquet file).
PROVENANCE_FIELDS = [
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_row", pa.int64(), nullable=False),
]

DEVICE_SCHEMA = pa.schema(
    [
        pa.field("installation_id", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("device_type", pa.string(), nullable=False),
        pa.field("manufacturer", pa.string()),
        pa.field("model", pa.string()),
        pa.field("firmware_version", pa.string()),
        pa.field("firmware_raw", pa.string()),
        pa.field("msn", pa.string()),
        pa.field("mpxn", pa.string()),
        pa.field("smi_status", pa.string()),
        pa.field("commissioned_date", pa.date32()),
        *PROVENANCE_FIELDS,
    ]
)

INSTALLATION_SCHEMA = pa.schema(
    [
        pa.field("installation_id", pa.string(), nullable=False),
        pa.field("smso", pa.string()),
        pa.field("supplier_mpid", pa.string()),
        pa.field("mode", pa.string()),
        pa.field("mpan_core", pa.string()),
        pa.field("mprn", pa.string()),
        pa.field("install_date", pa.date32()),
        pa.field("last_wan_contact", pa.date32()),
        # Personal data: carried for the DCC inventory match, never logged.
        pa.field("postcode", pa.string()),
        pa.field("devices", pa.int64(), nullable=False),
        *(pa.field(f"n_{t.lower()}", pa.int64(), nullable=False) for t in DeviceType),
        # Rows of this installation that were quarantined: an installation with any is incomplete.
        pa.field("quarantined_rows", pa.int64(), nullable=False),
        *PROVENANCE_FIELDS,
    ]
)

# One row per (input row, column, reason): the quarantine, and likewise the warnings.
ROW_ISSUE_SCHEMA = pa.schema(
    [
        *PROVENANCE_FIELDS,
        pa.field("installation_id", pa.string()),
        pa.field("column", pa.string()),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

DUPLICATE_SCHEMA = pa.schema(
    [
        *PROVENANCE_FIELDS,
        pa.field("duplicate_of_file", pa.string(), nullable=False),
        pa.field("duplicate_of_row", pa.int64(), nullable=False),
    ]
)


class InstallationReason(StrEnum):
    """Why an installation is excluded from a cohort's plan. Every reason that applies is
    kept, not only the first."""

    DATA_INVALID = "DATA_INVALID"  # a row of it was quarantined at ingest: it is incomplete
    NO_COMMS_HUB = "NO_COMMS_HUB"
    MULTIPLE_COMMS_HUBS = "MULTIPLE_COMMS_HUBS"
    MPXN_MISSING = "MPXN_MISSING"  # a meter without its MPAN core or MPRN
    DUPLICATE_DEVICE = "DUPLICATE_DEVICE"  # a device listed in another installation too
    DUPLICATE_MPXN = "DUPLICATE_MPXN"  # an MPAN or MPRN listed in another installation too
    WRONG_SMSO = "WRONG_SMSO"  # served by an SMSO the cohort does not migrate
    DORMANT = "DORMANT"  # dormant, in a cohort that migrates active installations
    NOT_DORMANT = "NOT_DORMANT"  # active, in the dormant batch
    MODE_UNKNOWN = "MODE_UNKNOWN"  # neither active nor dormant is known
    DMC_NOT_ELIGIBLE = "DMC_NOT_ELIGIBLE"  # a device model on no eligible combination
    FIRMWARE_UPGRADE_REQUIRED = "FIRMWARE_UPGRADE_REQUIRED"  # older than a listed version
    FIRMWARE_NOT_LISTED = "FIRMWARE_NOT_LISTED"  # newer than every listed version
    FIRMWARE_UNRECOGNISED = "FIRMWARE_UNRECOGNISED"  # cannot be placed in the order
    COMBINATION_NOT_LISTED = "COMBINATION_NOT_LISTED"  # each device listed, the set is not
    COMBINATION_NOT_YET_LISTED = "COMBINATION_NOT_YET_LISTED"  # listed after the plan's date


# A request payload lists each device as an array in this order: the wire format that the
# plan writes, staging checks and the DCC (its simulator here) reads.
PAYLOAD_DEVICE_FIELDS = (
    "device_id",
    "device_type",
    "manufacturer",
    "model",
    "firmware_version",
    "msn",
    "mpxn",
)

# The device types an eligible product combination names; type 2 devices are set aside.
COMBINATION_SLOTS = (DeviceType.CHF, DeviceType.ESME, DeviceType.GSME, DeviceType.PPMID)
