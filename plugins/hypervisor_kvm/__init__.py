"""The KVM hypervisor plugin: libvirt-python against libvirtd + QEMU.

``driver.LibvirtDriver`` is the entry point (``kvm`` in ``strato.hypervisors``); ``host``
holds the connections, ``guest`` one domain's lifecycle, ``config`` the pure XML building,
``errors`` the translation of libvirt's errors. Importing this package imports nothing
(``config`` works without libvirt-python).
"""
