/* SPDX-License-Identifier: MIT */
/*
 * The ipcd wire codec: frame header layout, per-kind metadata blocks, error
 * codes and the checks every received frame passes before anything acts on
 * it. Pure code (no I/O, no logging, no globals); built once and linked by
 * both the daemon and libipcd-client. docs/PROTOCOL.md is the prose version
 * of this file: change both together.
 *
 * A frame on the stream is:
 *
 *   header (32 bytes) | meta (meta_len) | topic (topic_len) | payload (payload_len)
 *
 * All integers are little-endian. `size` is the whole frame, header included.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1
#define WIRE_HEADER_SIZE 32

/* Header field offsets. */
#define WIRE_OFF_SIZE 0        /* u32 whole frame size */
#define WIRE_OFF_VERSION 4     /* u8  WIRE_VERSION */
#define WIRE_OFF_KIND 5        /* u8  WireKind */
#define WIRE_OFF_FLAGS 6       /* u16 WIRE_F_* */
#define WIRE_OFF_TYPE 8        /* u32 user message type */
#define WIRE_OFF_PAYLOAD_LEN 12 /* u32 */
#define WIRE_OFF_TOPIC_LEN 16  /* u16 */
#define WIRE_OFF_N_FDS 18      /* u8  fds owned by this frame */
#define WIRE_OFF_META_LEN 19   /* u8  */
#define WIRE_OFF_RESERVED 20   /* u32 must be zero */
#define WIRE_OFF_CORR 24       /* u64 correlation id */

typedef enum WireKind {
        WIRE_HELLO = 1,        /* client → broker, first frame */
        WIRE_WELCOME = 2,      /* broker → client, answer to HELLO */
        WIRE_SUBSCRIBE = 3,    /* client → broker */
        WIRE_UNSUBSCRIBE = 4,  /* client → broker */
        WIRE_ACK = 5,          /* broker → client: the frame with this corr id succeeded */
        WIRE_PUBLISH = 6,      /* client → broker */
        WIRE_MESSAGE = 7,      /* broker → client: a delivery */
        WIRE_ERROR = 8,        /* broker → client */
        WIRE_PING = 9,         /* either way; answered by PONG with the same corr id and payload */
        WIRE_PONG = 10,
        WIRE_REQUEST = 11,     /* client → broker → one responder */
        WIRE_REPLY = 12,       /* responder → broker → requester */
        WIRE_ADMIN = 13,       /* client → broker: topic names the command ("status") */
        WIRE_ADMIN_REPLY = 14, /* broker → client: payload is a JSON document */
        WIRE_GOODBYE = 15,     /* reserved: broker is shutting down */
        _WIRE_KIND_MAX = 15,
} WireKind;

/* Header flags. Every bit not defined for a kind must be zero. */
enum {
        WIRE_F_RETAIN = 1u << 0, /* PUBLISH: keep as retained (reserved); MESSAGE: retained delivery */
        WIRE_F_BULK = 1u << 1,   /* PUBLISH/MESSAGE: payload is a sealed memfd, the frame's first fd (reserved) */
        WIRE_F_ACK = 1u << 2,    /* PUBLISH: answer with ACK once routed */
        WIRE_F_FATAL = 1u << 3,  /* ERROR: the broker closes the connection after this frame */
};

/* Error codes carried in ERROR frames. Stable: only ever appended to. */
typedef enum WireError {
        WIRE_E_OK = 0,
        WIRE_E_MALFORMED = 1,     /* header fields inconsistent, bad meta, bad flags */
        WIRE_E_VERSION = 2,       /* unsupported protocol version */
        WIRE_E_KIND = 3,          /* unknown frame kind, or one a client may not send */
        WIRE_E_TOO_LARGE = 4,     /* a length exceeds the broker's limit */
        WIRE_E_BAD_TOPIC = 5,     /* invalid topic name */
        WIRE_E_BAD_FILTER = 6,    /* invalid subscription filter */
        WIRE_E_HANDSHAKE = 7,     /* frame before HELLO, or a second HELLO */
        WIRE_E_NO_SUCH_SUB = 8,   /* UNSUBSCRIBE of an unknown id */
        WIRE_E_SUB_EXISTS = 9,    /* SUBSCRIBE with an id already in use */
        WIRE_E_LIMIT = 10,        /* a quota was reached (subscriptions, queue) */
        WIRE_E_PERMISSION = 11,   /* access rules refuse the operation */
        WIRE_E_UNSUPPORTED = 12,  /* a known kind or flag this broker does not implement */
        WIRE_E_FDS = 13,          /* fd count mismatch, missing or surplus fds */
        WIRE_E_BULK = 14,         /* bulk payload check failed */
        WIRE_E_NO_RESPONDERS = 15,
        WIRE_E_TIMEOUT = 16,
        WIRE_E_RESPONDER_GONE = 17,
        WIRE_E_INTERNAL = 18,     /* the broker failed (out of memory, ...) */
        WIRE_E_SLOW_CONSUMER = 19,
        WIRE_E_BAD_COMMAND = 20,  /* unknown ADMIN command */
        WIRE_E_NO_SUCH_REQUEST = 21, /* REPLY to a request that is unknown, expired, or not this client's */
        WIRE_E_BAD_CONFIG = 22,   /* ADMIN reload: the file is invalid; the running configuration stays */
        WIRE_E_KICKED = 23,       /* disconnected by an administrator */
        _WIRE_E_MAX,
} WireError;

/* SUBSCRIBE flags. */
enum {
        WIRE_SUB_F_NO_RETAINED = 1u << 0, /* do not deliver retained messages on subscribe */
        WIRE_SUB_F_RESPONDER = 1u << 1,   /* serve REQUESTs on the filter (instead of messages) */
        _WIRE_SUB_F_ALL = WIRE_SUB_F_NO_RETAINED | WIRE_SUB_F_RESPONDER,
};

/* Sizes of the per-kind metadata blocks (meta_len must match exactly). */
#define WIRE_META_HELLO 8        /* u32 client flags (0), u32 reserved (0) */
#define WIRE_META_WELCOME 40     /* see WireWelcome */
#define WIRE_META_SUBSCRIBE 8    /* u32 sub id, u16 n_types, u8 group_len, u8 sub flags */
#define WIRE_META_UNSUBSCRIBE 8  /* u32 sub id, u32 reserved */
#define WIRE_META_PUBLISH_BULK 8 /* u64 bulk size, only with WIRE_F_BULK */
#define WIRE_META_MESSAGE 32     /* see WireDelivery */
#define WIRE_META_ERROR 8        /* u32 code, u32 kind of the frame it answers */
#define WIRE_META_REQUEST 16     /* client: u32 timeout ms (0 = default), u32 0, u64 bulk size */
#define WIRE_META_REQUEST_IN 40  /* to a responder: WireDelivery, u32 ms left, u32 0 */
#define WIRE_META_REPLY 8        /* responder: u64 bulk size */
#define WIRE_META_REPLY_IN 32    /* to the requester: WireDelivery (the responder's) */

#define WIRE_MAX_CLIENT_NAME 64
#define WIRE_MAX_TYPES_PER_SUB 64
#define WIRE_MAX_FDS_PER_SENDMSG 253 /* SCM_MAX_FD */
/* A sendmsg that carries fds carries at most this much data: the kernel sends
 * the first ~36 KiB of a unix stream sendmsg as one piece, so a partial write
 * can never deliver fds ahead of the frames that own them. */
#define WIRE_FD_SENDMSG_MAX_BYTES (16 * 1024)

/* The decoded fixed header, host byte order. */
typedef struct WireHeader {
        uint32_t size;
        uint8_t version;
        uint8_t kind;
        uint16_t flags;
        uint32_t type;
        uint32_t payload_len;
        uint16_t topic_len;
        uint8_t n_fds;
        uint8_t meta_len;
        uint32_t reserved;
        uint64_t corr;
} WireHeader;

/* What a receiver accepts; the broker announces its values in WELCOME. */
typedef struct WireLimits {
        uint32_t max_payload;   /* inline payload bytes */
        uint16_t max_topic_len; /* topic or filter bytes */
        uint8_t max_fds;        /* fds per frame */
} WireLimits;

#define WIRE_DEFAULT_MAX_PAYLOAD (1u << 20)
#define WIRE_DEFAULT_MAX_TOPIC 1024
#define WIRE_DEFAULT_MAX_FDS 16
#define WIRE_DEFAULT_MAX_BULK (1ull << 30)

/* WELCOME metadata. */
typedef struct WireWelcome {
        uint32_t client_id;
        uint32_t max_payload;
        uint32_t max_topic_len;
        uint32_t max_fds;
        uint32_t max_subscriptions;
        uint32_t max_types_per_sub;
        uint64_t max_bulk_size;
        uint64_t out_queue_bytes;
} WireWelcome;

/* MESSAGE metadata: who sent it and where it sits in its topic's sequence. */
typedef struct WireDelivery {
        uint32_t sender_pid;
        uint32_t sender_uid;
        uint32_t sender_gid;
        uint32_t sub_id;
        uint64_t seq;
        uint64_t bulk_size;
} WireDelivery;

/* SUBSCRIBE metadata. */
typedef struct WireSubscribe {
        uint32_t sub_id;
        uint16_t n_types;
        uint8_t group_len;
        uint8_t flags;
} WireSubscribe;

/*
 * Decodes the 32-byte header at @buf into @ret (untouched on failure) and
 * checks everything that can be checked from the header alone: version,
 * kind, flags, reserved bits, the size equation, the exact meta length of
 * the kind, and @limits. Returns WIRE_E_OK or the WireError to send back;
 * *ret_why (if not NULL) points to a static human explanation.
 */
WireError wire_header_decode(const uint8_t *buf, const WireLimits *limits, WireHeader *ret,
                             const char **ret_why);

/* Writes @h to @buf (32 bytes). `size` is written as given. */
void wire_header_encode(uint8_t *buf, const WireHeader *h);

/*
 * Encodes a whole frame into @buf of @cap bytes: header (size computed from
 * the parts), then @meta, @topic and @payload. Returns the frame size, or 0
 * when it does not fit @cap or a length exceeds its field.
 */
size_t wire_frame_encode(uint8_t *buf, size_t cap, uint8_t kind, uint16_t flags, uint32_t type,
                         uint64_t corr, uint8_t n_fds, const void *meta, size_t meta_len,
                         const void *topic, size_t topic_len, const void *payload,
                         size_t payload_len);

/* Meta block codecs. Decoders validate reserved fields; they return false on
 * a malformed block. Encoders write exactly WIRE_META_* bytes. */
void wire_welcome_encode(uint8_t *buf, const WireWelcome *w);
bool wire_welcome_decode(const uint8_t *buf, WireWelcome *ret);
void wire_delivery_encode(uint8_t *buf, const WireDelivery *d);
void wire_delivery_decode(const uint8_t *buf, WireDelivery *ret);
void wire_subscribe_encode(uint8_t *buf, const WireSubscribe *s);
void wire_subscribe_decode(const uint8_t *buf, WireSubscribe *ret);
void wire_error_meta_encode(uint8_t *buf, uint32_t code, uint32_t ref_kind);

/* Name of a kind ("PUBLISH"), or "UNKNOWN". */
const char *wire_kind_name(unsigned kind);
/* Short stable name of an error code ("bad-topic"), or "unknown-error". */
const char *wire_error_name(unsigned code);
/* The negative errno a client library reports for an error code. */
int wire_error_to_errno(unsigned code);

/*
 * Default socket path, the one the daemon listens on and clients connect to
 * when no path is given: $RUNTIME_DIRECTORY/ipcd.sock (systemd's
 * RuntimeDirectory=, first entry), else $XDG_RUNTIME_DIR/ipcd.sock, else
 * /run/ipcd/ipcd.sock. Writes into @buf of @cap bytes; returns 0, or
 * -ENAMETOOLONG when the result would not fit a sockaddr_un.
 */
int wire_default_socket_path(char *buf, size_t cap);
