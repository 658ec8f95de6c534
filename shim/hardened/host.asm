; host.asm (variant hardened): the host side; it also saves CR4, which this shim switches.
%define HOST_SAVES_CR4 1
%include "host.inc"
