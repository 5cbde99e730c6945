// networkpolicy — Kubernetes NetworkPolicy (networking.k8s.io/v1) as a knp plugin.
//
// SPDX-License-Identifier: Apache-2.0
//
// Watches networkpolicies, keeps each object by namespace/name, applies the API server's
// defaults and validation itself (an invalid object is logged once and evaluated as if absent;
// the others keep working), and answers per direction as policy-semantics.md §1 says:
// isolated and allowed → ACCEPT, isolated and not allowed → DENY, not isolated or not a pod →
// NEXT, so baseline plugins later in the pipeline still decide for unisolated pods.
//
// Interest: the IPs of the pods on this node that some policy isolates, per direction (never
// divert-all). The index behind the snapshots is described in index.hpp and model.hpp.

#include <knp/plugin.hpp>
#include <knp/types.hpp>

#include <boost/json.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/json_util.hpp"
#include "networkpolicy/model.hpp"
#include "networkpolicy/policy.hpp"
#include "networkpolicy/snapshot.hpp"

namespace {

namespace json = boost::json;
using knp::netpol::Model;
using knp::netpol::PolicySpec;
using knp::netpol::Snapshot;

constexpr const char kSchema[] = R"({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "networkpolicy",
  "description": "No options: the policies come from the cluster (networking.k8s.io/v1 NetworkPolicy).",
  "type": "object",
  "additionalProperties": false
})";

class NetworkPolicyPlugin : public knp::Plugin<NetworkPolicyPlugin, Snapshot> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "networkpolicy",
        .version = "0.1.0",
        .description = "Kubernetes NetworkPolicy (networking.k8s.io/v1), indexed for large clusters",
        .configSchema = kSchema,
    };

    explicit NetworkPolicyPlugin(const knp::InitContext& ctx) : Plugin(ctx) {
        boost::system::error_code ec;
        json::value config = json::parse(ctx.configJson, ec);
        if (ec) throw knp::ConfigError("", "config is not valid JSON: " + ec.message());
        const json::object* o = config.if_object();
        if (o == nullptr) throw knp::ConfigError("", "config must be an object");
        if (!o->empty())
            throw knp::ConfigError(
                knp::jsonPointer("", o->begin()->key()),
                "unknown key \"" + std::string(o->begin()->key()) + "\" (this plugin has no options)");
        policiesMetric_ = host().defineMetric(KNP_METRIC_GAUGE, "networkpolicies", "valid NetworkPolicies in force");
        invalidMetric_ = host().defineMetric(KNP_METRIC_GAUGE, "networkpolicies_invalid",
                                             "NetworkPolicies ignored because they fail validation");
        missMetric_ = host().defineMetric(KNP_METRIC_COUNTER, "networkpolicy_index_misses",
                                          "packet ends evaluated without the index (a pod it did not know as passed)");
        updateMetric_ = host().defineMetric(KNP_METRIC_HISTOGRAM, "networkpolicy_update_seconds",
                                            "time to apply one update and build its snapshot");
    }

    std::vector<knp::Watch> watches() const {
        return {{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"}};
    }

    std::unique_ptr<Snapshot> update(const knp::Update& u) {
        uint64_t start = host().monotonicNs();
        std::vector<std::pair<std::string, std::shared_ptr<const PolicySpec>>> changes;  // null: gone
        for (knp::EventView e : u) {
            if (e.watchIndex() != 0) continue;
            if (e.type() == knp::EventType::Added || e.type() == knp::EventType::Modified) {
                changes.push_back(read(e));
            } else if (e.type() == knp::EventType::Deleted) {
                invalid_.erase(changes.emplace_back(keyOf(e), nullptr).first);
            } else {
                continue;  // SYNCED; RELIST, which the host reconciles into the events above itself
            }
            // At once, so that read() counts against kMaxPolicies within a batch too.
            const auto& [key, spec] = changes.back();
            if (spec) {
                sources_[key] = spec;
            } else {
                sources_.erase(key);
            }
        }
        if (model_ && changes.empty() && !u.podsChanged()) return nullptr;

        std::unique_ptr<Snapshot> snap;
        try {
            bool changed = !changes.empty();
            if (!model_) {
                // First update, or the one after a failed update left the index half-changed.
                model_ = std::make_unique<Model>(host(), missMetric_);
                model_->walkPods(host(), nodeName());
                for (const auto& [key, spec] : sources_) model_->setPolicy(spec);
                changed = true;
            } else {
                if (u.hasPodChanges()) {
                    changed = model_->applyPodChanges(u, nodeName()) || changed;
                } else if (u.podsChanged()) {
                    changed = model_->walkPods(host(), nodeName()) || changed;
                }
                for (const auto& [key, spec] : changes) {
                    if (spec) {
                        model_->setPolicy(spec);
                    } else {
                        model_->removePolicy(key);
                    }
                }
            }
            if (!changed) return nullptr;
            snap = model_->publish();
        } catch (...) {
            model_.reset();  // rebuilt from sources_ by the next update
            throw;
        }

        knp::netpol::ModelStats st = model_->stats();
        host().set(policiesMetric_, static_cast<double>(st.policies));
        host().set(invalidMetric_, static_cast<double>(invalid_.size()));
        uint64_t took = host().monotonicNs() - start;
        host().observe(updateMetric_, static_cast<double>(took) / 1e9);
        if (host().logEnabled(KNP_LOG_DEBUG)) {
            host().debug(std::to_string(st.policies) + " policies (" + std::to_string(invalid_.size()) + " invalid), " +
                         std::to_string(st.pods) + " pods in " + std::to_string(st.identities) + " identities, " +
                         std::to_string(st.peers) +
                         " peers; local pods isolated: " + std::to_string(st.localIngressIsolated) + " ingress, " +
                         std::to_string(st.localEgressIsolated) + " egress; update took " +
                         std::to_string(took / 1000) + " us");
        }
        return snap;
    }

private:
    // namespace/name of the event's object: the host repeats its metadata on the event; fall
    // back to the object itself for a host (or test) that does not.
    static std::string keyOf(const knp::EventView& e) {
        std::string ns(e.objectNamespace()), name(e.name());
        if (name.empty()) {
            boost::system::error_code ec;
            json::value v = json::parse(e.object(), ec);
            const json::object* meta = nullptr;
            if (!ec && v.is_object()) {
                if (const json::value* m = knp::policy::member(v.get_object(), "metadata")) meta = m->if_object();
            }
            if (meta != nullptr) {
                if (const json::value* n = knp::policy::member(*meta, "name"); n && n->is_string())
                    name = std::string(n->get_string());
                if (const json::value* n = knp::policy::member(*meta, "namespace"); n && n->is_string() && ns.empty())
                    ns = std::string(n->get_string());
            }
        }
        if (ns.empty()) ns = "default";
        return ns + "/" + name;
    }

    // The object of an ADDED/MODIFIED event: its spec, or null (logged) when it is invalid.
    std::pair<std::string, std::shared_ptr<const PolicySpec>> read(const knp::EventView& e) {
        try {
            auto spec = std::make_shared<const PolicySpec>(
                knp::netpol::parseNetworkPolicy(e.object(), e.objectNamespace(), e.name()));
            if (sources_.size() >= knp::netpol::kMaxPolicies && sources_.count(spec->key) == 0)
                throw knp::policy::JsonError("", "more than " + std::to_string(knp::netpol::kMaxPolicies) +
                                                     " NetworkPolicies; this one is not enforced");
            if (invalid_.erase(spec->key) != 0) host().info("NetworkPolicy " + spec->key + " is valid again");
            return {spec->key, spec};
        } catch (const knp::policy::JsonError& err) {
            std::string key = keyOf(e);
            invalid_.insert(key);
            // One line, once per delivered version: the API server would have refused the
            // object, so it is treated as absent and the rest keep working.
            std::string where = err.pointer().empty() ? "" : err.pointer() + ": ";
            host().warning("NetworkPolicy " + key + " is invalid and ignored: " + where + err.what());
            return {key, nullptr};
        }
    }

    std::map<std::string, std::shared_ptr<const PolicySpec>> sources_;  // valid objects by key
    std::set<std::string> invalid_;                                     // keys of invalid ones
    std::unique_ptr<Model> model_;
    uint32_t policiesMetric_ = UINT32_MAX;
    uint32_t invalidMetric_ = UINT32_MAX;
    uint32_t updateMetric_ = UINT32_MAX;
    uint32_t missMetric_ = UINT32_MAX;
};

}  // namespace

KNP_EXPORT_PLUGIN(NetworkPolicyPlugin)
