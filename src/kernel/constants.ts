// IPVS generic netlink numbers (include/uapi/linux/ip_vs.h, ../shared/ipvs-reference.md §3) and the
// netlink framing constants the client needs. Numbers only: no logic here.

export const NETLINK_GENERIC = 16;

// nlmsghdr
export const NLMSG_HDRLEN = 16;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLA_F_NESTED = 0x8000;
export const NLA_TYPE_MASK = 0x3fff;
export const GENL_HDRLEN = 4;

// the generic netlink controller
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;

export const IPVS_GENL_NAME = "IPVS";
export const IPVS_GENL_VERSION = 1;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;

// commands (§3.2)
export const IPVS_CMD_NEW_SERVICE = 1;
export const IPVS_CMD_SET_SERVICE = 2;
export const IPVS_CMD_DEL_SERVICE = 3;
export const IPVS_CMD_GET_SERVICE = 4;
export const IPVS_CMD_NEW_DEST = 5;
export const IPVS_CMD_SET_DEST = 6;
export const IPVS_CMD_DEL_DEST = 7;
export const IPVS_CMD_GET_DEST = 8;
export const IPVS_CMD_NEW_DAEMON = 9;
export const IPVS_CMD_DEL_DAEMON = 10;
export const IPVS_CMD_GET_DAEMON = 11;
export const IPVS_CMD_SET_CONFIG = 12;
export const IPVS_CMD_GET_CONFIG = 13;
export const IPVS_CMD_SET_INFO = 14;
export const IPVS_CMD_GET_INFO = 15;
export const IPVS_CMD_ZERO = 16;
export const IPVS_CMD_FLUSH = 17;

export const CMD_NAMES: Record<number, string> = {
  1: "NEW_SERVICE",
  2: "SET_SERVICE",
  3: "DEL_SERVICE",
  4: "GET_SERVICE",
  5: "NEW_DEST",
  6: "SET_DEST",
  7: "DEL_DEST",
  8: "GET_DEST",
  9: "NEW_DAEMON",
  10: "DEL_DAEMON",
  11: "GET_DAEMON",
  12: "SET_CONFIG",
  13: "GET_CONFIG",
  14: "SET_INFO",
  15: "GET_INFO",
  16: "ZERO",
  17: "FLUSH",
};

// top-level attributes
export const IPVS_CMD_ATTR_SERVICE = 1;
export const IPVS_CMD_ATTR_DEST = 2;
export const IPVS_CMD_ATTR_DAEMON = 3;
export const IPVS_CMD_ATTR_TIMEOUT_TCP = 4;
export const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN = 5;
export const IPVS_CMD_ATTR_TIMEOUT_UDP = 6;

// service attributes
export const IPVS_SVC_ATTR_AF = 1;
export const IPVS_SVC_ATTR_PROTOCOL = 2;
export const IPVS_SVC_ATTR_ADDR = 3;
export const IPVS_SVC_ATTR_PORT = 4; // be16
export const IPVS_SVC_ATTR_FWMARK = 5;
export const IPVS_SVC_ATTR_SCHED_NAME = 6;
export const IPVS_SVC_ATTR_FLAGS = 7; // struct ip_vs_flags { u32 flags; u32 mask; }
export const IPVS_SVC_ATTR_TIMEOUT = 8;
export const IPVS_SVC_ATTR_NETMASK = 9; // IPv4: mask bytes in network order; IPv6: host-order prefix length
export const IPVS_SVC_ATTR_STATS = 10;
export const IPVS_SVC_ATTR_PE_NAME = 11;
export const IPVS_SVC_ATTR_STATS64 = 12;

// destination attributes
export const IPVS_DEST_ATTR_ADDR = 1;
export const IPVS_DEST_ATTR_PORT = 2; // be16
export const IPVS_DEST_ATTR_FWD_METHOD = 3;
export const IPVS_DEST_ATTR_WEIGHT = 4;
export const IPVS_DEST_ATTR_U_THRESH = 5;
export const IPVS_DEST_ATTR_L_THRESH = 6;
export const IPVS_DEST_ATTR_ACTIVE_CONNS = 7;
export const IPVS_DEST_ATTR_INACT_CONNS = 8;
export const IPVS_DEST_ATTR_PERSIST_CONNS = 9;
export const IPVS_DEST_ATTR_STATS = 10;
export const IPVS_DEST_ATTR_ADDR_FAMILY = 11;
export const IPVS_DEST_ATTR_STATS64 = 12;
export const IPVS_DEST_ATTR_TUN_TYPE = 13; // u8
export const IPVS_DEST_ATTR_TUN_PORT = 14; // be16
export const IPVS_DEST_ATTR_TUN_FLAGS = 15; // u16

// stats attributes (STATS: u32 except the two byte counters; STATS64: all u64)
export const IPVS_STATS_ATTR_CONNS = 1;
export const IPVS_STATS_ATTR_INPKTS = 2;
export const IPVS_STATS_ATTR_OUTPKTS = 3;
export const IPVS_STATS_ATTR_INBYTES = 4;
export const IPVS_STATS_ATTR_OUTBYTES = 5;
export const IPVS_STATS_ATTR_CPS = 6;
export const IPVS_STATS_ATTR_INPPS = 7;
export const IPVS_STATS_ATTR_OUTPPS = 8;
export const IPVS_STATS_ATTR_INBPS = 9;
export const IPVS_STATS_ATTR_OUTBPS = 10;
export const IPVS_STATS_ATTR_PAD = 11;

// sync daemon attributes (inside IPVS_CMD_ATTR_DAEMON); ports are host order here, unlike services'
export const IPVS_DAEMON_ATTR_STATE = 1; // u32: IP_VS_STATE_MASTER or IP_VS_STATE_BACKUP
export const IPVS_DAEMON_ATTR_MCAST_IFN = 2; // NUL-terminated string, at most IP_VS_IFNAME_MAXLEN with the NUL
export const IPVS_DAEMON_ATTR_SYNC_ID = 3; // u32 (ipvsadm takes 0..255)
export const IPVS_DAEMON_ATTR_SYNC_MAXLEN = 4; // u16: the UDP payload size
export const IPVS_DAEMON_ATTR_MCAST_GROUP = 5; // in_addr (network order)
export const IPVS_DAEMON_ATTR_MCAST_GROUP6 = 6; // in6_addr
export const IPVS_DAEMON_ATTR_MCAST_PORT = 7; // u16
export const IPVS_DAEMON_ATTR_MCAST_TTL = 8; // u8
export const IP_VS_STATE_MASTER = 1;
export const IP_VS_STATE_BACKUP = 2;
export const IP_VS_IFNAME_MAXLEN = 16;

export const IPVS_INFO_ATTR_VERSION = 1;
export const IPVS_INFO_ATTR_CONN_TAB_SIZE = 2;

// service flags (§3.3)
export const IP_VS_SVC_F_PERSISTENT = 0x1;
export const IP_VS_SVC_F_HASHED = 0x2;
export const IP_VS_SVC_F_ONEPACKET = 0x4;
export const IP_VS_SVC_F_SCHED1 = 0x8;
export const IP_VS_SVC_F_SCHED2 = 0x10;
export const IP_VS_SVC_F_SCHED3 = 0x20;

// forwarding methods (§3.5)
export const IP_VS_CONN_F_MASQ = 0;
export const IP_VS_CONN_F_LOCALNODE = 1;
export const IP_VS_CONN_F_TUNNEL = 2;
export const IP_VS_CONN_F_DROUTE = 3;
export const IP_VS_CONN_F_BYPASS = 4;
export const IP_VS_CONN_F_FWD_MASK = 0x7;

// tunnels
export const IP_VS_CONN_F_TUNNEL_TYPE_IPIP = 0;
export const IP_VS_CONN_F_TUNNEL_TYPE_GUE = 1;
export const IP_VS_CONN_F_TUNNEL_TYPE_GRE = 2;
export const IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM = 0;
export const IP_VS_TUNNEL_ENCAP_FLAG_CSUM = 1;
export const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM = 2;

export const IP_VS_SCHEDNAME_MAXLEN = 16;
export const IP_VS_PENAME_MAXLEN = 16;

// errno values the kernel returns on the IPVS paths, with what they mean there
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  ENOMEM: 12,
  EBUSY: 16,
  ENODEV: 19,
  EEXIST: 17,
  EINVAL: 22,
  ERANGE: 34,
  ENOBUFS: 105,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ETIMEDOUT: 110,
  EMSGSIZE: 90,
  ENOTSUP: 95,
  EPROTO: 71,
} as const;

export const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  12: "ENOMEM",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  34: "ERANGE",
  71: "EPROTO",
  90: "EMSGSIZE",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  105: "ENOBUFS",
  110: "ETIMEDOUT",
};

// plain meanings on the IPVS paths (ENOENT differs by command: a missing destination, or an unknown
// scheduler / persistence engine on a service command; the client picks the right one)
export const ERRNO_MEANINGS: Record<number, string> = {
  1: "needs CAP_NET_ADMIN (run as root or grant the capability)",
  2: "no such destination",
  3: "no such service",
  12: "out of memory",
  16: "busy",
  17: "already exists",
  19: "no such network interface",
  22: "invalid argument (a missing or bad attribute, or mismatched address families)",
  34: "out of range (negative weight, or lower threshold above upper threshold)",
  90: "message too long",
  95: "not supported by this kernel",
  97: "address family not supported",
  105: "netlink receive buffer overrun",
};
