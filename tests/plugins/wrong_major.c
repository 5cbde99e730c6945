/* wrong_major.so — models a plugin built for a future ABI major (abi_major = KNP_ABI_MAJOR + 1). */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("wrong_major"),
    .abi_major = KNP_ABI_MAJOR + 1,
};
RAW_PLUGIN_ENTRY(&descriptor)
