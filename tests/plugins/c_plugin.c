/* c_plugin.so — GOOD pure-C11 plugin (plugin_api.h only): accepts, or {"verdict":"deny"} denies, ingress to port 7. */
#include <knp/plugin_api.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define C_PLUGIN_PORT 7

/* The instance and its one snapshot: both only need the configured verdict. */
typedef struct c_plugin_state {
    int32_t verdict;
    int published;
} c_plugin_state;

static const knp_port_range c_plugin_ports[] = {{C_PLUGIN_PORT, C_PLUGIN_PORT}};
/* Denying needs interest in what it denies; accepting alone needs none (see knp_interest). */
static const knp_direction_interest c_plugin_deny_ingress = {
    sizeof(knp_direction_interest), KNP_INTEREST_DIVERT_ALL, 0, 0, NULL, 0, NULL, 0, c_plugin_ports, 1};
static const knp_interest c_plugin_deny_interest = {sizeof(knp_interest), 0, &c_plugin_deny_ingress, NULL};

static void c_plugin_copy_out(char* buf, size_t cap, const char* s) {
    size_t n;
    if (buf == NULL || cap == 0) return;
    n = strlen(s);
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

static int32_t c_plugin_fail(knp_error* err, const char* message, const char* pointer) {
    if (err != NULL) {
        c_plugin_copy_out(err->message, err->message_cap, message);
        c_plugin_copy_out(err->pointer, err->pointer_cap, pointer);
    }
    return -EINVAL;
}

/* Finds `needle` in the (pointer, length) view; returns its end or NULL. */
static const char* c_plugin_find(const char* p, const char* end, const char* needle) {
    size_t n = strlen(needle);
    for (; (size_t)(end - p) >= n; ++p) {
        if (memcmp(p, needle, n) == 0) return p + n;
    }
    return NULL;
}

static const char* c_plugin_skip_space(const char* p, const char* end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
    return p;
}

/* Minimal parsing of the one key this plugin has: "verdict": "accept" | "deny" (default accept). */
static int32_t c_plugin_parse(knp_str config, int32_t* out_verdict, knp_error* err) {
    const char *p = config.data, *end = config.data + config.len, *value;
    size_t n;
    *out_verdict = KNP_VERDICT_ACCEPT;
    if (config.len == 0) return KNP_OK;
    p = c_plugin_find(p, end, "\"verdict\"");
    if (p == NULL) return KNP_OK;
    p = c_plugin_skip_space(p, end);
    if (p == end || *p++ != ':') return c_plugin_fail(err, "expected ':' after \"verdict\"", "/verdict");
    p = c_plugin_skip_space(p, end);
    if (p == end || *p++ != '"') return c_plugin_fail(err, "verdict must be a string", "/verdict");
    value = p;
    while (p < end && *p != '"') ++p;
    n = (size_t)(p - value);
    if (n == 4 && memcmp(value, "deny", 4) == 0) {
        *out_verdict = KNP_VERDICT_DENY;
    } else if (!(n == 6 && memcmp(value, "accept", 6) == 0)) {
        return c_plugin_fail(err, "verdict must be \"accept\" or \"deny\"", "/verdict");
    }
    return KNP_OK;
}

static int32_t c_plugin_init(const knp_init_args* args, knp_plugin** out_plugin, knp_error* err) {
    c_plugin_state* self;
    int32_t verdict;
    int32_t rc = c_plugin_parse(args->config_json, &verdict, err);
    if (rc != KNP_OK) return rc;
    self = calloc(1, sizeof *self);
    if (self == NULL) {
        if (err != NULL) c_plugin_copy_out(err->message, err->message_cap, "out of memory");
        return -ENOMEM;
    }
    self->verdict = verdict;
    *out_plugin = (knp_plugin*)self;
    return KNP_OK;
}

static void c_plugin_destroy(knp_plugin* plugin) { free(plugin); /* free(NULL) is a no-op */ }

static int32_t c_plugin_update(knp_plugin* plugin, const knp_update_args* args, knp_update_result* out,
                               knp_error* err) {
    c_plugin_state *self = (c_plugin_state*)plugin, *snapshot;
    (void)args;
    if (self->published) return KNP_OK; /* the config never changes: unchanged */
    snapshot = malloc(sizeof *snapshot);
    if (snapshot == NULL) {
        if (err != NULL) c_plugin_copy_out(err->message, err->message_cap, "out of memory");
        return -ENOMEM;
    }
    *snapshot = *self;
    out->snapshot = snapshot;
    out->interest = self->verdict == KNP_VERDICT_DENY ? &c_plugin_deny_interest : NULL;
    self->published = 1;
    return KNP_OK;
}

static void c_plugin_release_snapshot(knp_plugin* plugin, void* snapshot) {
    (void)plugin;
    free(snapshot);
}

static int32_t c_plugin_evaluate_ingress(const void* snapshot, const knp_eval_args* args, knp_eval_result* out) {
    const c_plugin_state* s = snapshot;
    const knp_packet* pkt = args->packet;
    if (pkt == NULL || !KNP_HAS_MEMBER(knp_packet, pkt->struct_size, dst_port)) return -EINVAL;
    if ((pkt->protocol == KNP_PROTO_TCP || pkt->protocol == KNP_PROTO_UDP || pkt->protocol == KNP_PROTO_SCTP) &&
        pkt->dst_port == C_PLUGIN_PORT) {
        static const char accepted[] = "c_plugin: port 7 accepted";
        static const char denied[] = "c_plugin: port 7 denied";
        out->verdict = s->verdict;
        out->reason.data = s->verdict == KNP_VERDICT_DENY ? denied : accepted;
        out->reason.len = strlen(out->reason.data);
    } else {
        out->verdict = KNP_VERDICT_NEXT;
    }
    return KNP_OK;
}

static const knp_plugin_descriptor c_plugin_descriptor = {
    .struct_size = sizeof(knp_plugin_descriptor),
    .abi_major = KNP_ABI_MAJOR,
    .abi_minor = KNP_ABI_MINOR,
    .name = "c_plugin",
    .version = "1.0.0",
    .description = "accepts or denies ingress to port 7; written in C11",
    .contact = "",
    .license = "Apache-2.0",
    .capabilities = KNP_CAP_INGRESS,
    .config_schema = "{\"type\":\"object\",\"properties\":{\"verdict\":{\"enum\":[\"accept\",\"deny\"]}}}",
    .init = c_plugin_init,
    .destroy = c_plugin_destroy,
    .get_watches = NULL, /* no watches */
    .update = c_plugin_update,
    .release_snapshot = c_plugin_release_snapshot,
    .evaluate_ingress = c_plugin_evaluate_ingress,
    .evaluate_egress = NULL, /* KNP_CAP_EGRESS not claimed */
};

__attribute__((visibility("default"))) const knp_plugin_descriptor* knp_plugin_entry_v1(void) {
    return &c_plugin_descriptor;
}
