/* short_descriptor.so — models a descriptor whose struct_size is smaller than the 1.0 descriptor. */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("short_descriptor"),
    .struct_size = offsetof(knp_plugin_descriptor, evaluate_ingress),
};
RAW_PLUGIN_ENTRY(&descriptor)
