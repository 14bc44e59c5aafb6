/**
 * The Linux interface names moat writes into a rule (`-i NAME`, `-o NAME`): the one definition
 * that the Docker reader (a bridge a network names explicitly) and the compiler (the host's
 * `br-*` interfaces it exempts) both check against. Pure.
 */

/**
 * At most 15 characters (the kernel's IFNAMSIZ less the NUL), and only a subset iptables reads
 * as one literal name: no `+` wildcard, no quotes, no spaces.
 */
export const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
