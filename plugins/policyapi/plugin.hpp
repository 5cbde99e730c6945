// policyapi — the plugin class shared by adminnetworkpolicy.so and clusternetworkpolicy.so: one
// instance enforces one tier of one API (ANP, BANP, or the CNPs of one tier).
//
// SPDX-License-Identifier: Apache-2.0
//
// Events: objects are kept by name (all three kinds are cluster-scoped). An invalid object is
// logged once per delivered version (one line: kind, name, JSON pointer, message) and evaluated
// as absent; the others keep working. A ClusterNetworkPolicy of the other tier is silently
// absent here: the other tier's instance enforces it. Every update that changes a policy or
// follows a pod change publishes a new index; the Model (index.hpp) reuses what the change left
// alone, and applies the host's list of changed pods (ABI 1.1) without walking every pod. A
// missing CRD is not an error: the host retries the watch and the first update publishes a
// snapshot with no policies, so the instance is ready.
// THREAD: control thread (SDK contract); snapshots are immutable.
#ifndef KNP_POLICYAPI_PLUGIN_HPP
#define KNP_POLICYAPI_PLUGIN_HPP

#include <knp/plugin.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/json_util.hpp"
#include "policyapi/index.hpp"
#include "policyapi/spec.hpp"

namespace knp::papi {

// Which API and tier an instance enforces, read from its config {"tier": "admin"|"baseline"}
// (either capitalisation; default admin). Throws knp::ConfigError naming the bad key.
struct InstanceKind {
    Api api;
    Tier tier;
};
InstanceKind readInstanceConfig(std::string_view configJson, bool clusterNetworkPolicy);

template <class Derived>
class PolicyApiPlugin : public knp::Plugin<Derived, Snapshot> {
    using Base = knp::Plugin<Derived, Snapshot>;

public:
    PolicyApiPlugin(const knp::InitContext& ctx, InstanceKind kind) : Base(ctx), api_(kind.api), tier_(kind.tier) {
        policiesMetric_ = this->host().defineMetric(KNP_METRIC_GAUGE, "policyapi_policies", "valid policies in force");
        invalidMetric_ = this->host().defineMetric(KNP_METRIC_GAUGE, "policyapi_policies_invalid",
                                                   "policies ignored because they fail validation");
        missMetric_ = this->host().defineMetric(KNP_METRIC_COUNTER, "policyapi_index_misses",
                                                "packet ends evaluated without the index (a pod it did not know)");
        updateMetric_ = this->host().defineMetric(KNP_METRIC_HISTOGRAM, "policyapi_update_seconds",
                                                  "time to apply one update and build its snapshot");
    }

    std::vector<knp::Watch> watches() const {
        switch (api_) {
            case Api::AdminNetworkPolicy:
                return {{"policy.networking.k8s.io", "v1alpha1", "adminnetworkpolicies", "AdminNetworkPolicy"}};
            case Api::BaselineAdminNetworkPolicy:
                return {{"policy.networking.k8s.io", "v1alpha1", "baselineadminnetworkpolicies",
                         "BaselineAdminNetworkPolicy"}};
            case Api::ClusterNetworkPolicy:
                break;
        }
        return {{"policy.networking.k8s.io", "v1alpha2", "clusternetworkpolicies", "ClusterNetworkPolicy"}};
    }

    std::unique_ptr<Snapshot> update(const knp::Update& u) {
        uint64_t start = this->host().monotonicNs();
        bool changed = false;
        for (knp::EventView e : u) {
            if (e.watchIndex() != 0) continue;
            if (e.type() == knp::EventType::Added || e.type() == knp::EventType::Modified) {
                auto [name, spec] = read(e);
                if (spec) {
                    sources_[name] = std::move(spec);
                } else {
                    sources_.erase(name);
                }
                changed = true;
            } else if (e.type() == knp::EventType::Deleted) {
                std::string name = nameOf(e);
                invalid_.erase(name);
                sources_.erase(name);
                changed = true;
            }
        }
        if (index_ && !changed && !u.podsChanged()) return nullptr;
        std::vector<std::shared_ptr<const PolicySpec>> specs;
        specs.reserve(sources_.size());
        for (const auto& [name, spec] : sources_) specs.push_back(spec);
        // Precedence: priority ascending, ties by name (§2.4: deterministic, never asserted).
        std::stable_sort(specs.begin(), specs.end(),
                         [](const auto& a, const auto& b) { return a->priority < b->priority; });
        std::string podsHow = "pods unchanged";
        try {
            // The changed pods alone when the host lists them and the model can apply them;
            // otherwise (first update, a 1.0 host, after a failed update, see Model) a walk.
            if (!model_->hasCluster() || u.podsChanged()) {
                podsHow = "pods walked";
                if (model_->hasCluster() && u.hasPodChanges() && model_->applyPodChanges(u, this->nodeName())) {
                    podsHow = std::to_string(u.podChangeCount()) + " pod changes applied";
                } else {
                    model_->walk(this->host(), this->nodeName());
                }
            }
            index_ = model_->build(specs);
        } catch (...) {
            model_ = std::make_unique<Model>();  // a half-changed model starts over next time
            throw;
        }
        auto snap = std::make_unique<Snapshot>(index_, this->host(), missMetric_);
        snap->interest = interestOf(*index_);

        this->host().set(policiesMetric_, static_cast<double>(sources_.size()));
        this->host().set(invalidMetric_, static_cast<double>(invalid_.size()));
        uint64_t took = this->host().monotonicNs() - start;
        this->host().observe(updateMetric_, static_cast<double>(took) / 1e9);
        if (this->host().logEnabled(KNP_LOG_DEBUG)) {
            this->host().debug(std::to_string(sources_.size()) + " policies (" + std::to_string(invalid_.size()) +
                               " invalid), " + std::to_string(index_->pods) + " pods in " +
                               std::to_string(index_->identityCount) + " identities, " +
                               std::to_string(index_->peerCount) + " peers, " + std::to_string(index_->tableCount) +
                               " rule tables; local subjects: " + std::to_string(index_->localSubjects[0]) +
                               " ingress, " + std::to_string(index_->localSubjects[1]) + " egress; update took " +
                               std::to_string(took / 1000) + " us (" + podsHow + ")");
        }
        return snap;
    }

private:
    static std::string nameOf(const knp::EventView& e) {
        if (!e.name().empty()) return std::string(e.name());
        boost::system::error_code ec;
        boost::json::value v = boost::json::parse(e.object(), ec);
        if (!ec && v.is_object())
            if (const auto* m = knp::policy::member(v.get_object(), "metadata"); m && m->is_object())
                if (const auto* n = knp::policy::member(m->get_object(), "name"); n && n->is_string())
                    return std::string(n->get_string());
        return {};
    }

    // The object of an ADDED/MODIFIED event: its spec, or null when it is invalid (logged) or
    // belongs to the other tier.
    std::pair<std::string, std::shared_ptr<const PolicySpec>> read(const knp::EventView& e) {
        std::string name = nameOf(e);
        try {
            auto spec = std::make_shared<const PolicySpec>(parsePolicy(api_, e.object(), e.name()));
            name = spec->name;
            if (sources_.size() >= kMaxPolicies && sources_.count(name) == 0)
                throw knp::policy::JsonError(
                    "", "more than " + std::to_string(kMaxPolicies) + " policies; this one is not enforced");
            if (invalid_.erase(name) != 0) this->host().info(spec->key + " is valid again");
            if (spec->tier != tier_) return {name, nullptr};
            if (spec->usesDomainNames && !domainNamesLogged_) {
                domainNamesLogged_ = true;
                this->host().warning(spec->key +
                                     ": domainNames peers need DNS observation, which this version does not do; "
                                     "they match nothing (logged once)");
            }
            return {name, spec};
        } catch (const knp::policy::JsonError& err) {
            invalid_.insert(name);
            std::string where = err.pointer().empty() ? "" : err.pointer() + ": ";
            this->host().warning(std::string(kindName(api_)) + " \"" + name + "\" is invalid and ignored: " + where +
                                 err.what());
            return {name, nullptr};
        }
    }

    Api api_;
    Tier tier_;
    std::map<std::string, std::shared_ptr<const PolicySpec>> sources_;  // valid objects of this tier, by name
    std::set<std::string> invalid_;
    std::unique_ptr<Model> model_ = std::make_unique<Model>();
    std::shared_ptr<const Index> index_;
    bool domainNamesLogged_ = false;
    uint32_t policiesMetric_ = UINT32_MAX;
    uint32_t invalidMetric_ = UINT32_MAX;
    uint32_t missMetric_ = UINT32_MAX;
    uint32_t updateMetric_ = UINT32_MAX;
};

}  // namespace knp::papi

#endif  // KNP_POLICYAPI_PLUGIN_HPP
