/* minor_zero.so — GOOD plugin built for ABI 1.0 (abi_minor = 0) that refuses any update flag 1.0 did not define, as a
 * strict 1.0 plugin may: a 1.1 host must keep loading and updating it. */
#include "raw_plugin.h"

static int32_t strict_update(knp_plugin* plugin, const knp_update_args* args, knp_update_result* out, knp_error* err) {
    if ((args->flags & ~KNP_UPDATE_PODS_CHANGED) != 0) {
        raw_fill_error(err, "update flag unknown to ABI 1.0", "");
        return -EINVAL;
    }
    return raw_update(plugin, args, out, err);
}

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("minor_zero"),
    .abi_minor = 0,
    .update = strict_update,
};
RAW_PLUGIN_ENTRY(&descriptor)
