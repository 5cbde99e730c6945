// watcher.so — GOOD SDK plugin counting NetworkPolicy and Widget objects from two watches (end-to-end tests),
// and how it learnt about pods (metrics watcher_pod_changes, watcher_pod_walks).
//
// Ingress to a pod labelled watcher=deny is denied with reason "widgets=<n> policies=<m>";
// everything else is NEXT. Logs one info line per update. Config: {} (no keys).
#include "sdk_config.hpp"

#include <knp/plugin.hpp>

#include <array>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

// Indexes into watches().
constexpr uint32_t kPolicies = 0;
constexpr uint32_t kWidgets = 1;

// Every namespace, no selectors.
knp::Watch watch(std::string group, std::string resource, std::string kind) {
    knp::Watch w;
    w.group = std::move(group);
    w.version = "v1";
    w.resource = std::move(resource);
    w.kind = std::move(kind);
    return w;
}

struct WatcherSnapshot {
    std::string reason;  // owned here: decisions point into it
    knp::Interest interest;

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const {
        knp::PodView dst = a.dstPod();
        if (dst && dst.label("watcher") == "deny") return knp::Decision::deny(reason);
        return knp::Decision::next();
    }
};

class Watcher : public knp::Plugin<Watcher, WatcherSnapshot> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "watcher",
        .version = "1.0.0",
        .description = "counts NetworkPolicy and Widget objects; denies ingress to watcher=deny pods",
    };

    explicit Watcher(const knp::InitContext& ctx) : Plugin(ctx) {
        for (const auto& kv : knp_test::parseConfigObject(ctx.configJson)) knp_test::unknownKey(kv.key());
        podChanges_ = host().defineMetric(KNP_METRIC_COUNTER, "watcher_pod_changes", "pods the host listed as changed");
        podWalks_ = host().defineMetric(KNP_METRIC_COUNTER, "watcher_pod_walks", "updates that walked every pod");
    }

    std::vector<knp::Watch> watches() const {
        return {watch("networking.k8s.io", "networkpolicies", "NetworkPolicy"),
                watch("example.com", "widgets", "Widget")};
    }

    std::unique_ptr<WatcherSnapshot> update(const knp::Update& u) {
        bool changed = !published_;
        // How it learnt about pods: the host's list of changes (ABI 1.1), or a walk.
        if (u.hasPodChanges()) {
            host().add(podChanges_, static_cast<double>(u.podChangeCount()));
        } else if (u.podsChanged()) {
            host().forEachPod(false, [](knp::PodView) {});
            host().add(podWalks_, 1);
        }
        for (knp::EventView e : u) {
            if (e.watchIndex() >= objects_.size()) {
                host().warning("watcher: event for unknown watch index " + std::to_string(e.watchIndex()));
                continue;
            }
            std::set<std::string>& keys = objects_[e.watchIndex()];
            std::string key = std::string(e.objectNamespace()) + "/" + std::string(e.name());
            switch (e.type()) {
                case knp::EventType::Added:
                case knp::EventType::Modified:
                    changed |= keys.insert(std::move(key)).second;
                    break;
                case knp::EventType::Deleted:
                    changed |= keys.erase(key) > 0;
                    break;
                case knp::EventType::Synced:
                case knp::EventType::Relist:
                    break;
            }
        }
        std::string reason = "widgets=" + std::to_string(objects_[kWidgets].size()) +
                             " policies=" + std::to_string(objects_[kPolicies].size());
        host().info("watcher: update events=" + std::to_string(u.size()) + " " + reason);
        if (!changed) return nullptr;
        published_ = true;
        auto snap = std::make_unique<WatcherSnapshot>();
        snap->reason = std::move(reason);
        snap->interest.ingress.divertAll = true;  // it may deny any ingress
        return snap;
    }

private:
    std::array<std::set<std::string>, 2> objects_;  // namespace/name per watch
    bool published_ = false;
    uint32_t podChanges_ = UINT32_MAX;
    uint32_t podWalks_ = UINT32_MAX;
};

}  // namespace

KNP_EXPORT_PLUGIN(Watcher)
