/* newer_minor.so — models a plugin built against a newer minor than the host (abi_minor = KNP_ABI_MINOR + 1). */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("newer_minor"),
    .abi_minor = KNP_ABI_MINOR + 1,
};
RAW_PLUGIN_ENTRY(&descriptor)
