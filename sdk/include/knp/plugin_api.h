/*
 * knp plugin ABI — the one contract between the knp host (knpd, knpctl) and a policy plugin.
 *
 * SPDX-License-Identifier: Apache-2.0
 *
 * Rules that keep this header binary-stable within a major version:
 *  - Only <stdint.h>/<stddef.h> types; no bool, enums as field types, long, or C++ types.
 *  - Every struct that may grow starts with `uint32_t struct_size` and only grows at the end.
 *    A reader checks `struct_size` before touching a member added in a later minor
 *    (KNP_HAS_MEMBER). Arrays of growable structs are passed as arrays of POINTERS, so a
 *    newer element size never changes the stride an older reader walks with.
 *  - Structs marked FROZEN never change layout; they are passed as plain arrays.
 *  - Strings are borrowed (pointer, length) views, not NUL-terminated unless stated.
 *  - Nobody frees what the other side allocated.
 *
 * Versioning: the major is part of the entry symbol (knp_plugin_entry_v1). The host accepts a
 * plugin whose descriptor reports the host's major and a minor <= the host's minor.
 *
 * Threads: "control" calls (init, get_watches, update, release_snapshot, destroy) are made from
 * one host thread at a time. "data" calls (evaluate_ingress, evaluate_egress) are made
 * concurrently from several threads, each on a snapshot that update() returned and that has
 * not been released. A snapshot is immutable from the moment update() returns it.
 */
#ifndef KNP_PLUGIN_API_H
#define KNP_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Versions                                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define KNP_ABI_MAJOR 1
#define KNP_ABI_MINOR 1
/* The one symbol a plugin exports. Changes with the major. */
#define KNP_PLUGIN_ENTRY_SYMBOL "knp_plugin_entry_v1"

/* True when a struct of reported size `size` contains member `member` of `type`. */
#define KNP_HAS_MEMBER(type, size, member) ((size) >= offsetof(type, member) + sizeof(((type*)0)->member))

/* ---------------------------------------------------------------------------------------- */
/* Return codes: 0 or a negative errno value (e.g. -EINVAL for bad config, -ENOMEM).        */
/* ---------------------------------------------------------------------------------------- */

#define KNP_OK 0

/* ---------------------------------------------------------------------------------------- */
/* Verdicts                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* No opinion: the next plugin in the pipeline decides; when all say NEXT the packet passes. */
#define KNP_VERDICT_NEXT 0
/* Final for this direction: allowed. */
#define KNP_VERDICT_ACCEPT 1
/* Final for this direction: dropped (silently; no reset, no ICMP). */
#define KNP_VERDICT_DENY 2

/* ---------------------------------------------------------------------------------------- */
/* Small FROZEN value types                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* A borrowed string view. `data` may be NULL when `len` is 0. FROZEN. */
typedef struct knp_str {
    const char* data;
    size_t len;
} knp_str;

#define KNP_FAMILY_IPV4 4
#define KNP_FAMILY_IPV6 6

/*
 * An IP address. FROZEN.
 * `bytes` always holds the IPv6 form: an IPv4 address a.b.c.d is stored IPv4-mapped
 * (::ffff:a.b.c.d), so one 16-byte comparison serves both families. `family` says which family
 * the address really is.
 */
typedef struct knp_addr {
    uint8_t family; /* KNP_FAMILY_IPV4 or KNP_FAMILY_IPV6 */
    uint8_t reserved[3];
    uint8_t bytes[16];
} knp_addr;

/* A prefix. `prefix_len` counts in the family's own terms (0..32 for IPv4, 0..128 for IPv6). FROZEN. */
typedef struct knp_cidr {
    knp_addr addr;
    uint8_t prefix_len;
    uint8_t reserved[3];
} knp_cidr;

/* An inclusive port range; a single port has first == last. FROZEN. */
typedef struct knp_port_range {
    uint16_t first;
    uint16_t last;
} knp_port_range;

/* A label (key=value). Label arrays handed out by the host are sorted by key. FROZEN. */
typedef struct knp_label {
    knp_str key;
    knp_str value;
} knp_label;

/* IP protocol numbers as on the wire. */
#define KNP_PROTO_ICMP 1
#define KNP_PROTO_TCP 6
#define KNP_PROTO_UDP 17
#define KNP_PROTO_ICMPV6 58
#define KNP_PROTO_SCTP 132

/* A container port of a pod (spec.containers[].ports[]). `protocol` is a KNP_PROTO_*. FROZEN. */
typedef struct knp_container_port {
    knp_str name; /* empty when unnamed */
    uint16_t port;
    uint8_t protocol;
    uint8_t reserved[5]; /* explicit tail: no hidden padding in a FROZEN struct */
} knp_container_port;

/* ---------------------------------------------------------------------------------------- */
/* Views handed to evaluation                                                                */
/* ---------------------------------------------------------------------------------------- */

#define KNP_POD_HOST_NETWORK 0x1u /* spec.hostNetwork: the IP is the node's, see knp_pod docs */

/*
 * One end of a packet that is a pod. The host builds it from Pod, Namespace and Node objects.
 * OWNERSHIP: borrowed from the host, valid for the duration of the call it is passed to.
 * A non-pod IP (external, node, a hostNetwork pod's IP) is passed as NULL, never as a pod.
 * SINCE: 1.0
 */
typedef struct knp_pod {
    uint32_t struct_size;
    uint32_t flags; /* KNP_POD_* */
    knp_str name;
    knp_str pod_namespace;
    knp_str uid;
    const knp_label* labels; /* sorted by key */
    size_t n_labels;
    const knp_label* namespace_labels; /* sorted by key; includes kubernetes.io/metadata.name */
    size_t n_namespace_labels;
    knp_str node_name;            /* empty when not scheduled */
    const knp_label* node_labels; /* sorted by key; empty when the Node is unknown */
    size_t n_node_labels;
    const knp_addr* node_addresses; /* the node's InternalIP/ExternalIP addresses */
    size_t n_node_addresses;
    const knp_container_port* container_ports; /* spec.containers[].ports[], in order */
    size_t n_container_ports;
    const knp_addr* ips; /* status.podIPs */
    size_t n_ips;
} knp_pod;

/*
 * The first packet of a connection, as parsed by the host.
 * For ICMP/ICMPv6, src_port/dst_port are 0 and icmp_type/icmp_code are set.
 * `headers` points at the L3 header (as much as the host copied), may be empty.
 * SINCE: 1.0
 */
typedef struct knp_packet {
    uint32_t struct_size;
    uint8_t family;   /* KNP_FAMILY_* */
    uint8_t protocol; /* KNP_PROTO_* or any other IP protocol number */
    uint8_t icmp_type;
    uint8_t icmp_code;
    knp_addr src;
    knp_addr dst; /* after DNAT: a Service's backend, not its ClusterIP */
    uint16_t src_port;
    uint16_t dst_port;
    uint32_t headers_len;
    const uint8_t* headers;
} knp_packet;

/*
 * Arguments of evaluate_ingress / evaluate_egress. The direction is the function called:
 * egress is evaluated for the source end, ingress for the destination end.
 * OWNERSHIP: all borrowed for the call. THREAD: data threads, concurrently.
 * SINCE: 1.0
 */
typedef struct knp_eval_args {
    uint32_t struct_size;
    uint32_t reserved;
    const knp_packet* packet;
    const knp_pod* src_pod; /* NULL when the source is not a pod */
    const knp_pod* dst_pod; /* NULL when the destination is not a pod */
} knp_eval_args;

/*
 * What an evaluation decided. The host zeroes it and sets struct_size before the call.
 * `reason` and `rule` are optional explanations shown by `knpctl simulate` and logs. They must
 * stay valid until the snapshot the call was made on is released (static strings, or strings
 * owned by the snapshot). Both may stay empty.
 * SINCE: 1.0
 */
typedef struct knp_eval_result {
    uint32_t struct_size;
    int32_t verdict; /* KNP_VERDICT_* */
    knp_str reason;  /* e.g. "allowed by ipBlock of ns/policy" */
    knp_str rule;    /* e.g. the policy name and rule index */
} knp_eval_result;

/* ---------------------------------------------------------------------------------------- */
/* Interest: which traffic the host must send to userspace for this plugin                   */
/* ---------------------------------------------------------------------------------------- */

/* The plugin cannot describe its traffic: queue every new connection in this direction. */
#define KNP_INTEREST_DIVERT_ALL 0x1u
/*
 * Every pod on this node (not hostNetwork pods) is a local endpoint of interest, as if its IPs
 * were listed in `local`. For plugins that govern all pods alike (a port guard); the host keeps
 * the set current as pods come and go, without an update() from the plugin.
 */
#define KNP_INTEREST_LOCAL_PODS 0x2u

/* Protocol bits for knp_direction_interest.protocols; 0 means every protocol. */
#define KNP_PROTO_BIT_TCP 0x1u
#define KNP_PROTO_BIT_UDP 0x2u
#define KNP_PROTO_BIT_SCTP 0x4u
#define KNP_PROTO_BIT_ICMP 0x8u /* ICMP and ICMPv6 */
#define KNP_PROTO_BIT_OTHER 0x10u

/*
 * Interest for one direction. A new connection is sent to userspace for this direction when
 * (DIVERT_ALL, or its local end is in `local` or, with LOCAL_PODS, is a pod on this node, or
 * its remote end is in `remote`) and its
 * protocol is in `protocols` and, for port-carrying protocols, its destination port is in
 * `dst_ports`. The local end is the source for egress and the destination for ingress.
 *
 * Interest is a performance filter, never semantics: a plugin still answers NEXT for traffic
 * it does not govern. It must cover every connection the plugin may DENY, and every connection
 * it may ACCEPT that no later plugin's interest already covers with a DENY. A plugin that only
 * ever ACCEPTs (an allowlist) can usually declare nothing: it is still called for every packet
 * that some other plugin's interest brings to userspace.
 * SINCE: 1.0
 */
typedef struct knp_direction_interest {
    uint32_t struct_size;
    uint32_t flags;     /* KNP_INTEREST_* */
    uint32_t protocols; /* KNP_PROTO_BIT_*; 0 = all */
    uint32_t reserved;
    const knp_cidr* local;
    size_t n_local;
    const knp_cidr* remote;
    size_t n_remote;
    const knp_port_range* dst_ports; /* empty = all ports */
    size_t n_dst_ports;
} knp_direction_interest;

/* SINCE: 1.0. Either pointer may be NULL: no interest in that direction. */
typedef struct knp_interest {
    uint32_t struct_size;
    uint32_t reserved;
    const knp_direction_interest* ingress;
    const knp_direction_interest* egress;
} knp_interest;

/* ---------------------------------------------------------------------------------------- */
/* Watches and events                                                                        */
/* ---------------------------------------------------------------------------------------- */

/*
 * A Kubernetes resource the plugin needs, e.g. {"networking.k8s.io", "v1", "networkpolicies"}.
 * The core group is the empty string. Optional selectors narrow the watch server-side.
 * The host de-duplicates identical watches across plugins and hands every subscriber the same
 * bytes. A resource whose CRD is not installed is retried; the plugin just sees no objects.
 * OWNERSHIP: plugin-owned; must stay valid until destroy().
 * SINCE: 1.0
 */
typedef struct knp_watch {
    uint32_t struct_size;
    uint32_t reserved;
    knp_str group;
    knp_str version;
    knp_str resource;        /* plural, lower case: "networkpolicies" */
    knp_str kind;            /* "NetworkPolicy"; lets knpctl map objects in a state file */
    knp_str watch_namespace; /* empty = all namespaces */
    knp_str label_selector;  /* empty = everything */
    knp_str field_selector;  /* empty = everything */
} knp_watch;

/* The object is new. */
#define KNP_EVENT_ADDED 1
/* The object changed; `object` is its whole new state. */
#define KNP_EVENT_MODIFIED 2
/* The object is gone; `object` is its last known state. */
#define KNP_EVENT_DELETED 3
/* The watch has delivered its complete current state (after the initial list or a relist). */
#define KNP_EVENT_SYNCED 4
/*
 * The host lost the watch and is listing again. Informational: the host itself reconciles
 * (mark and sweep) and delivers ADDED/MODIFIED/DELETED for every difference, then SYNCED, so a
 * plugin that keys objects by namespace/name stays correct without handling RELIST.
 */
#define KNP_EVENT_RELIST 5

/*
 * One watch event. `watch_index` indexes the array get_watches() returned.
 * `object` is the object's JSON as the API server sent it (metadata.managedFields stripped);
 * empty for SYNCED and RELIST. `object_namespace`/`name` repeat metadata for convenience.
 * OWNERSHIP: borrowed for the update() call; copy what you keep.
 * SINCE: 1.0
 */
typedef struct knp_event {
    uint32_t struct_size;
    uint32_t type; /* KNP_EVENT_* */
    uint32_t watch_index;
    uint32_t reserved;
    knp_str object;
    knp_str object_namespace;
    knp_str name;
} knp_event;

/* The host's pod index changed since the previous update() (pods, namespaces or nodes). */
#define KNP_UPDATE_PODS_CHANGED 0x1u
/*
 * Set with KNP_UPDATE_PODS_CHANGED when `pod_changes` lists every difference between the pod
 * index this instance's previous update() saw and the current one. Without it (the first
 * update, an update after this instance's previous update() failed, a 1.0 host, or a host that
 * chose not to compute one) a plugin that needs to know which pods changed walks for_each_pod.
 * SINCE: 1.1
 */
#define KNP_UPDATE_POD_CHANGES 0x2u

/*
 * One pod that entered, left or changed in the host's pod index (the pods for_each_pod(0)
 * walks) since the previous update(): `before` its view then (NULL: it was not in the index),
 * `after` its view now (NULL: it left: deleted, terminal, or no IP). A change of any field of
 * knp_pod counts, including its namespace's labels and its node's labels and addresses, so a
 * namespace relabel lists every pod of that namespace. A listed pod's two views may compare
 * equal in every field a plugin reads; each pod is listed at most once.
 * OWNERSHIP: borrowed for the update() call, both views included; copy what you keep.
 * SINCE: 1.1
 */
typedef struct knp_pod_change {
    uint32_t struct_size;
    uint32_t reserved;
    const knp_pod* before;
    const knp_pod* after;
} knp_pod_change;

/* SINCE: 1.0. OWNERSHIP: borrowed for the call. */
typedef struct knp_update_args {
    uint32_t struct_size;
    uint32_t flags; /* KNP_UPDATE_* */
    const knp_event* const* events;
    size_t n_events;
    /* SINCE 1.1 (check KNP_HAS_MEMBER): meaningful only with KNP_UPDATE_POD_CHANGES. */
    const knp_pod_change* const* pod_changes;
    size_t n_pod_changes;
} knp_update_args;

/*
 * What update() returns. The host zeroes it and sets struct_size before the call.
 * Leave `snapshot` NULL for "unchanged": the previous snapshot stays current. When update()
 * fails (returns < 0) the host ignores `out` entirely: free anything you put there yourself.
 * OWNERSHIP: the snapshot and the interest it points at belong to the plugin and must stay
 * valid and unchanged until release_snapshot(). The host releases every snapshot it was
 * given, exactly once, on the control thread, after no data thread can still use it.
 * SINCE: 1.0
 */
typedef struct knp_update_result {
    uint32_t struct_size;
    uint32_t reserved;
    void* snapshot;
    const knp_interest* interest; /* NULL = no interest */
} knp_update_result;

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/*
 * Host-owned buffers a failing control call fills with a NUL-terminated, one-line message and,
 * for config errors, the JSON pointer (RFC 6901) of the offending key ("/rules/0/cidrs/1").
 * Either buffer may be NULL (capacity 0). Truncate, never overflow.
 * SINCE: 1.0
 */
typedef struct knp_error {
    uint32_t struct_size;
    uint32_t reserved;
    char* message;
    size_t message_cap;
    char* pointer;
    size_t pointer_cap;
} knp_error;

/* ---------------------------------------------------------------------------------------- */
/* Host services                                                                             */
/* ---------------------------------------------------------------------------------------- */

#define KNP_LOG_ERROR 0
#define KNP_LOG_WARNING 1
#define KNP_LOG_INFO 2
#define KNP_LOG_DEBUG 3
#define KNP_LOG_TRACE 4

#define KNP_METRIC_COUNTER 1
#define KNP_METRIC_GAUGE 2
#define KNP_METRIC_HISTOGRAM 3

/*
 * Passed to init(); valid until destroy(). Every call takes the `ctx` from knp_init_args.
 * THREAD: log, log_enabled, metric_add, metric_set, metric_observe, monotonic_ns and
 * request_update are safe from any thread (data threads included: they do not block or
 * allocate). metric_define and for_each_pod are control-thread only; for_each_pod only inside
 * update().
 * SINCE: 1.0
 */
typedef struct knp_host_api {
    uint32_t struct_size;
    uint32_t reserved;
    void (*log)(void* ctx, int32_t level, knp_str message);
    int32_t (*log_enabled)(void* ctx, int32_t level);
    /* Defines a metric, exported with the instance name as a label. Returns 0 and an id. */
    int32_t (*metric_define)(void* ctx, int32_t type, knp_str name, knp_str help, uint32_t* out_id);
    void (*metric_add)(void* ctx, uint32_t id, double value);
    void (*metric_set)(void* ctx, uint32_t id, double value);
    void (*metric_observe)(void* ctx, uint32_t id, double value);
    /* Asks the host to call update() soon even without events (e.g. a timer in the plugin). */
    void (*request_update)(void* ctx);
    uint64_t (*monotonic_ns)(void* ctx);
    /*
     * Calls `fn` for every pod in the host's index (non-terminal pods with an IP, hostNetwork
     * pods included and flagged). `local_only` restricts to pods on this node. Stops early and
     * returns what `fn` returned when that is non-zero (return a positive value to stop, so it
     * cannot be mistaken for the host's own -EPERM when called outside update()).
     */
    int32_t (*for_each_pod)(void* ctx, int32_t local_only, int32_t (*fn)(void* user, const knp_pod* pod), void* user);
} knp_host_api;

/* SINCE: 1.0. OWNERSHIP: borrowed for the init() call, except `host`, valid until destroy(). */
typedef struct knp_init_args {
    uint32_t struct_size;
    uint32_t host_abi_minor;
    knp_str instance_name; /* unique within the pipeline */
    knp_str config_json;   /* the instance's `config` from pipeline.yaml, as JSON ("{}" if none) */
    knp_str node_name;     /* the node this host enforces for; empty in knpctl simulate */
    const knp_host_api* host;
    void* host_ctx;
} knp_init_args;

/* ---------------------------------------------------------------------------------------- */
/* The descriptor                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* The plugin implements evaluate_ingress. */
#define KNP_CAP_INGRESS 0x1u
/* The plugin implements evaluate_egress. */
#define KNP_CAP_EGRESS 0x2u

typedef struct knp_plugin knp_plugin; /* opaque instance */

/*
 * The function table. Required: init, destroy, update, release_snapshot, and evaluate_ingress /
 * evaluate_egress for the capabilities claimed. get_watches may be NULL (no watches).
 * No function may let a C++ exception or a longjmp escape.
 */
typedef struct knp_plugin_descriptor {
    uint32_t struct_size;
    uint32_t abi_major; /* KNP_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor; /* KNP_ABI_MINOR the plugin was built with */
    uint32_t reserved;
    const char* name;    /* NUL-terminated; short, e.g. "allowlist" */
    const char* version; /* the plugin's own version, e.g. "1.2.0" */
    const char* description;
    const char* contact;
    const char* license;       /* SPDX identifier */
    uint64_t capabilities;     /* KNP_CAP_* */
    const char* config_schema; /* JSON Schema of the config, or NULL */

    /* control: create an instance from its config. 0 and *out_plugin, or <0 and `err`. */
    int32_t (*init)(const knp_init_args* args, knp_plugin** out_plugin, knp_error* err);
    /* control: accepts NULL; cannot fail. Every snapshot has been released before. */
    void (*destroy)(knp_plugin* plugin);
    /* control: the watches the instance needs; array and elements plugin-owned. */
    int32_t (*get_watches)(knp_plugin* plugin, const knp_watch* const** out_watches, size_t* out_n);
    /* control: apply a batch of events (possibly empty) and maybe return a new snapshot. */
    int32_t (*update)(knp_plugin* plugin, const knp_update_args* args, knp_update_result* out, knp_error* err);
    /* control: the host is done with a snapshot. */
    void (*release_snapshot)(knp_plugin* plugin, void* snapshot);
    /* data, concurrent: 0 and out->verdict, or <0 (the instance's onError applies). */
    int32_t (*evaluate_ingress)(const void* snapshot, const knp_eval_args* args, knp_eval_result* out);
    int32_t (*evaluate_egress)(const void* snapshot, const knp_eval_args* args, knp_eval_result* out);
} knp_plugin_descriptor;

/* The entry point. Returns a pointer to static, constant data; does nothing else. */
typedef const knp_plugin_descriptor* (*knp_plugin_entry_fn)(void);

#if defined(__GNUC__) || defined(__clang__)
#define KNP_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define KNP_PLUGIN_EXPORT
#endif

/*
 * Declared here so that a plugin defining it with the wrong signature fails to compile.
 * A plugin defines exactly this (KNP_EXPORT_PLUGIN does it for C++ plugins); the host only
 * looks it up with dlsym and never links against it.
 */
KNP_PLUGIN_EXPORT const knp_plugin_descriptor* knp_plugin_entry_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* KNP_PLUGIN_API_H */
