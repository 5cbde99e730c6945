/*
 * Boilerplate shared by the raw C ABI test plugins (no SDK): a minimal VALID plugin that each
 * defect plugin copies and then breaks in exactly one place, so a loader test that rejects it
 * can only be reacting to that one defect.
 *
 * Usage (C11):
 *   static const knp_plugin_descriptor descriptor = {
 *       RAW_DESCRIPTOR_DEFAULTS("wrong_major"),
 *       .abi_major = KNP_ABI_MAJOR + 1,        // the defect: overrides the default
 *   };
 *   RAW_PLUGIN_ENTRY(&descriptor)
 *
 * The functions are also usable from C++ (throws_raw.cpp), which cannot override designated
 * initializers and so spells its descriptor out.
 */
#ifndef KNP_TESTS_RAW_PLUGIN_H
#define KNP_TESTS_RAW_PLUGIN_H

#include <knp/plugin_api.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef __cplusplus
/* Overriding a designated initializer is standard C (C11 6.7.9p19) and is exactly how the
 * defect plugins state their one defect; -Wextra would flag every one of them. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
#endif

#define RAW_EXPORT __attribute__((visibility("default")))

/* Defines the entry symbol returning `descriptor_ptr` (a constant expression, or NULL). */
#ifdef __cplusplus
#define RAW_PLUGIN_ENTRY(descriptor_ptr) \
    extern "C" RAW_EXPORT const knp_plugin_descriptor* knp_plugin_entry_v1(void) { return descriptor_ptr; }
#else
#define RAW_PLUGIN_ENTRY(descriptor_ptr) \
    RAW_EXPORT const knp_plugin_descriptor* knp_plugin_entry_v1(void) { return descriptor_ptr; }
#endif

/* Copies `s` into a host buffer: truncates, always NUL-terminates, accepts NULL/0. */
static inline void raw_copy_out(char* buf, size_t cap, const char* s) {
    size_t n;
    if (buf == NULL || cap == 0) return;
    n = strlen(s);
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
}

static inline void raw_fill_error(knp_error* err, const char* message, const char* pointer) {
    if (err == NULL) return;
    raw_copy_out(err->message, err->message_cap, message);
    raw_copy_out(err->pointer, err->pointer_cap, pointer);
}

/* The instance: remembers whether its (only) snapshot was handed out. */
typedef struct raw_instance {
    int published;
} raw_instance;

/* Every connection in both directions: raw test plugins want the host to actually call them. */
static const knp_direction_interest raw_divert_all = {
    sizeof(knp_direction_interest), KNP_INTEREST_DIVERT_ALL, 0, 0, NULL, 0, NULL, 0, NULL, 0};
static const knp_interest raw_interest = {sizeof(knp_interest), 0, &raw_divert_all, &raw_divert_all};

static inline int32_t raw_init(const knp_init_args* args, knp_plugin** out_plugin, knp_error* err) {
    raw_instance* self;
    (void)args;
    self = (raw_instance*)calloc(1, sizeof *self);
    if (self == NULL) {
        raw_fill_error(err, "out of memory", "");
        return -ENOMEM;
    }
    *out_plugin = (knp_plugin*)self;
    return KNP_OK;
}

static inline void raw_destroy(knp_plugin* plugin) { free(plugin); }

/* The first update publishes one snapshot; later ones report "unchanged". */
static inline int32_t raw_update(knp_plugin* plugin, const knp_update_args* args, knp_update_result* out,
                                 knp_error* err) {
    raw_instance* self = (raw_instance*)plugin;
    (void)args;
    if (self->published) return KNP_OK;
    out->snapshot = malloc(1);
    if (out->snapshot == NULL) {
        raw_fill_error(err, "out of memory", "");
        return -ENOMEM;
    }
    out->interest = &raw_interest;
    self->published = 1;
    return KNP_OK;
}

static inline void raw_release_snapshot(knp_plugin* plugin, void* snapshot) {
    (void)plugin;
    free(snapshot);
}

static inline int32_t raw_evaluate_next(const void* snapshot, const knp_eval_args* args, knp_eval_result* out) {
    (void)snapshot;
    (void)args;
    out->verdict = KNP_VERDICT_NEXT;
    return KNP_OK;
}

/* Every field of a valid 1.0 descriptor, as designated initializers in declaration order. */
#define RAW_DESCRIPTOR_DEFAULTS(plugin_name)                                                                        \
    .struct_size = sizeof(knp_plugin_descriptor), .abi_major = KNP_ABI_MAJOR, .abi_minor = KNP_ABI_MINOR,           \
    .reserved = 0, .name = plugin_name, .version = "0.0.0", .description = "knp loader test plugin", .contact = "", \
    .license = "Apache-2.0", .capabilities = KNP_CAP_INGRESS | KNP_CAP_EGRESS, .config_schema = NULL,               \
    .init = raw_init, .destroy = raw_destroy, .get_watches = NULL, .update = raw_update,                            \
    .release_snapshot = raw_release_snapshot, .evaluate_ingress = raw_evaluate_next,                                \
    .evaluate_egress = raw_evaluate_next

#endif /* KNP_TESTS_RAW_PLUGIN_H */
