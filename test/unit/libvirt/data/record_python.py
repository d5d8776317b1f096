#!/usr/bin/python3
"""Records the calls virsh's recordings lack, made by libvirt's own client.

Runs capture.py between python3-libvirt (libvirt.so's remote driver) and
the daemon at $LIBVIRT_SOCKET, and makes one call of each: get
capabilities, create-xml (a transient domain), get-xml-desc,
shutdown-flags (ACPI power button), destroy-flags, define-xml and undefine
(a persistent one). Writes the session to OUT, and prints what the calls
returned (one "NAME VALUE" line each) for the unit tests to compare with.
Run it next to a private libvirtd (see README.md):

    build/test/integration/libvirt/with_libvirtd \
        test/unit/libvirt/data/record_python.py test/unit/libvirt/data/python-lifecycle.txt
"""
import os
import subprocess
import sys
import tempfile
import time

import libvirt

DOMAIN = ("<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
          "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>"
          "<features><acpi/></features><devices>"
          "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
          "<memballoon model='none'/></devices></domain>")


def main():
    out = sys.argv[1]
    daemon = os.environ["LIBVIRT_SOCKET"]
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory() as tmp:
        listen = os.path.join(tmp, "sock")
        cap = subprocess.Popen([sys.executable, os.path.join(here, "capture.py"),
                                listen, daemon, out])
        deadline = time.monotonic() + 30
        while not os.path.exists(listen):  # capture.py binds, then accepts
            if cap.poll() is not None or time.monotonic() > deadline:
                sys.exit("capture.py did not start listening")
            time.sleep(0.05)
        c = libvirt.open("qemu+unix:///system?socket=" + listen)
        caps = c.getCapabilities()
        d = c.createXML(DOMAIN.format(name="lvtransient"), 0)
        xml = d.XMLDesc(0)
        d.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        d.destroyFlags(0)
        p = c.defineXML(DOMAIN.format(name="lvdefined"))
        p.undefine()
        expect = ["capabilities_length %d" % len(caps),
                  "transient_id %d" % d.ID(),
                  "transient_uuid %s" % d.UUIDString(),
                  "xml_length %d" % len(xml),
                  "defined_uuid %s" % p.UUIDString()]
        del d, p  # domains hold the connection: its socket closes with the last
        c.close()
        cap.wait(30)
    print("\n".join(expect))


if __name__ == "__main__":
    main()
