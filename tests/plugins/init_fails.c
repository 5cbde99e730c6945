/* init_fails.so — models a config rejected by init: -EINVAL with a message and the JSON pointer /threshold. */
#include "raw_plugin.h"

static int32_t init_fails(const knp_init_args* args, knp_plugin** out_plugin, knp_error* err) {
    (void)args;
    (void)out_plugin;
    raw_fill_error(err, "threshold must be an integer between 0 and 100", "/threshold");
    return -EINVAL;
}

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("init_fails"),
    .init = init_fails,
};
RAW_PLUGIN_ENTRY(&descriptor)
