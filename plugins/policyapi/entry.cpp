// The entry of adminnetworkpolicy.so (-DKNP_POLICYAPI_V1ALPHA1) and clusternetworkpolicy.so
// (-DKNP_POLICYAPI_V1ALPHA2): the same plugin class (plugin.hpp) with its own descriptor. One
// instance enforces one tier, chosen by its config:
//  - adminnetworkpolicy {tier: admin} (the default): AdminNetworkPolicies (v1alpha1);
//    {tier: baseline}: the BaselineAdminNetworkPolicy named default;
//  - clusternetworkpolicy {tier: Admin} (the default) or {tier: Baseline}: the
//    ClusterNetworkPolicies (v1alpha2) of that tier.
//
// SPDX-License-Identifier: Apache-2.0

#include "policyapi/plugin.hpp"

namespace {

// The config schema: one optional key, the tier (either capitalisation).
#define KNP_POLICYAPI_SCHEMA(TITLE, DESCRIPTION, DEFAULT_TIER)                                          \
    "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"title\": \"" TITLE               \
    "\", \"description\": \"" DESCRIPTION                                                               \
    "\", \"type\": \"object\", \"additionalProperties\": false, \"properties\": {\"tier\": {\"enum\": " \
    "[\"admin\", \"baseline\", \"Admin\", \"Baseline\"], \"default\": \"" DEFAULT_TIER "\"}}}"

#if defined(KNP_POLICYAPI_V1ALPHA1)
constexpr bool kCluster = false;
#define KNP_POLICYAPI_NAME "adminnetworkpolicy"
#define KNP_POLICYAPI_DESCRIPTION "AdminNetworkPolicy / BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1)"
#define KNP_POLICYAPI_TIERS "admin = the AdminNetworkPolicies, baseline = the BaselineAdminNetworkPolicy named default"
#define KNP_POLICYAPI_DEFAULT "admin"
#elif defined(KNP_POLICYAPI_V1ALPHA2)
constexpr bool kCluster = true;
#define KNP_POLICYAPI_NAME "clusternetworkpolicy"
#define KNP_POLICYAPI_DESCRIPTION "ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2)"
#define KNP_POLICYAPI_TIERS "Admin or Baseline: the ClusterNetworkPolicies of that tier"
#define KNP_POLICYAPI_DEFAULT "Admin"
#else
#error "build with -DKNP_POLICYAPI_V1ALPHA1 or -DKNP_POLICYAPI_V1ALPHA2 (plugins/meson.build)"
#endif

constexpr knp::PluginInfo kPluginInfo{
    .name = KNP_POLICYAPI_NAME,
    .version = "0.1.0",
    .description = KNP_POLICYAPI_DESCRIPTION ", one tier per instance, indexed",
    .configSchema =
        KNP_POLICYAPI_SCHEMA(KNP_POLICYAPI_NAME, "One tier: " KNP_POLICYAPI_TIERS ".", KNP_POLICYAPI_DEFAULT),
};

class PolicyApi : public knp::papi::PolicyApiPlugin<PolicyApi> {
public:
    static constexpr knp::PluginInfo kInfo = kPluginInfo;
    explicit PolicyApi(const knp::InitContext& ctx)
        : PolicyApiPlugin(ctx, knp::papi::readInstanceConfig(ctx.configJson, kCluster)) {}
};

}  // namespace

KNP_EXPORT_PLUGIN(PolicyApi)
