/* null_function.so — models a descriptor missing a required function (update == NULL), otherwise valid. */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("null_function"),
    .update = NULL,
};
RAW_PLUGIN_ENTRY(&descriptor)
