; host.asm (variant literal): the host side, exactly as the documented sequence needs it.
%define HOST_SAVES_CR4 0
%include "host.inc"
