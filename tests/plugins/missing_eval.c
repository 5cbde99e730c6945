/* missing_eval.so — models a capability without its function: KNP_CAP_INGRESS with evaluate_ingress == NULL. */
#include "raw_plugin.h"

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("missing_eval"),
    .capabilities = KNP_CAP_INGRESS,
    .evaluate_ingress = NULL,
    .evaluate_egress = NULL,
};
RAW_PLUGIN_ENTRY(&descriptor)
