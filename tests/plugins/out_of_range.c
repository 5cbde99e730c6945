/* out_of_range.so — models an evaluation that returns 0 (success) with verdict 7, which no KNP_VERDICT_* has. */
#include "raw_plugin.h"

static int32_t evaluate_out_of_range(const void* snapshot, const knp_eval_args* args, knp_eval_result* out) {
    (void)snapshot;
    (void)args;
    out->verdict = 7;
    return KNP_OK;
}

static const knp_plugin_descriptor descriptor = {
    RAW_DESCRIPTOR_DEFAULTS("out_of_range"),
    .evaluate_ingress = evaluate_out_of_range,
    .evaluate_egress = evaluate_out_of_range,
};
RAW_PLUGIN_ENTRY(&descriptor)
