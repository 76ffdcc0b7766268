"""NFS and shared-directory storage: ``NfsStorage`` (``driver``), one driver for both
primary storage and the image store, reaching files through a local directory, a
kernel NFS mount or userspace libnfs (``access``), with qemu-img (``qemuimg``)."""
