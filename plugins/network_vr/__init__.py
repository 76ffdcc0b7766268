"""The virtual-router network plugin: ``element.VirtualRouterElement`` (entry point ``vr``
in ``strato.network``) provides DHCP, DNS, user data, source NAT, static NAT, port
forwarding, firewall, egress rules, load balancing and remote-access VPN for guest
networks, each network's router being a Linux network namespace on the management host."""
