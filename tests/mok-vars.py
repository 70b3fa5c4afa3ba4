#!/usr/bin/env python3
"""mok-vars.py VARS.fd CERT.der OUT.fd: OVMF's variable store with a MokList
holding CERT, as MokManager would leave it after 'mokutil --import CERT':
shim copies it to MokListRT and the kernel trusts its keys for modules.

The store (edk2's authenticated variable format) follows the firmware
volume header: a 28-byte store header, then 4-byte aligned records of a
60-byte header (StartId 0x55AA, State, Attributes, counters, NameSize,
DataSize, VendorGuid), the UTF-16 name and the data, then 0xFF. MokList is
a non-volatile, boot-service-only variable of shim's GUID holding one
EFI_SIGNATURE_LIST of type X.509."""
import struct
import sys
import uuid

SHIM_GUID = uuid.UUID("605dab50-e046-4300-abb6-3dd810dd8b23")
CERT_X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
VAR_ADDED = 0x3F
NV_BS = 0x1 | 0x2

src, cert, out = sys.argv[1:4]
d = bytearray(open(src, "rb").read())
if d[40:44] != b"_FVH":
    sys.exit(f"{src}: not a firmware volume")
o = struct.unpack("<H", d[48:50])[0] + 28
while struct.unpack("<H", d[o:o + 2])[0] == 0x55AA:
    state = d[o + 2]
    name_size, data_size = struct.unpack("<II", d[o + 36:o + 44])
    name = d[o + 60:o + 60 + name_size].decode("utf-16le").rstrip("\0")
    if name.startswith("Mok") and state == VAR_ADDED:
        sys.exit(f"{src}: already has {name}")
    o = (o + 60 + name_size + data_size + 3) & ~3
der = open(cert, "rb").read()
sig = SHIM_GUID.bytes_le + der
esl = CERT_X509.bytes_le + struct.pack("<III", 28 + len(sig), 0, len(sig)) + sig
name = "MokList\0".encode("utf-16le")
rec = (struct.pack("<HBBIQ16sIII", 0x55AA, VAR_ADDED, 0, NV_BS, 0, bytes(16), 0,
                   len(name), len(esl)) + SHIM_GUID.bytes_le + name + esl)
if any(b != 0xFF for b in d[o:o + len(rec)]):
    sys.exit(f"{src}: no room for MokList")
d[o:o + len(rec)] = rec
open(out, "wb").write(d)
