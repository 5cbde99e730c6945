#include "state/kube_sync.hpp"

#include <boost/json.hpp>

#include "common/log.hpp"

namespace knp::host {

namespace json = boost::json;

Status KubeSync::addTargets() {
    auto add = [&](kube::WatchTarget t) -> Result<uint32_t> {
        auto idx = watches_.addTarget(t);
        if (!idx) return std::move(idx).error();
        if (routes_.size() <= *idx) routes_.resize(*idx + 1);
        return *idx;
    };
    const std::pair<kube::WatchTarget, CoreKind> core[] = {
        {{"", "v1", "pods", "Pod", "", "", ""}, CoreKind::Pod},
        {{"", "v1", "namespaces", "Namespace", "", "", ""}, CoreKind::Namespace},
        {{"", "v1", "nodes", "Node", "", "", ""}, CoreKind::Node},
    };
    for (const auto& [target, kind] : core) {
        auto idx = add(target);
        if (!idx) return std::move(idx).error();
        routes_[*idx].core = kind;
    }
    const auto& ws = pipeline_.watches();
    for (size_t w = 0; w < ws.size(); ++w) {
        const WatchSpec& s = ws[w];
        auto idx = add({s.group, s.version, s.resource, s.kind, s.watchNamespace, s.labelSelector, s.fieldSelector});
        if (!idx) return std::move(idx).error();
        routes_[*idx].pipelineWatches.push_back(w);
    }
    return okStatus();
}

KubeSync::Outcome KubeSync::poll() {
    Outcome out;
    batch_.clear();
    watches_.drain(batch_);
    for (kube::WatchEvent& e : batch_) {
        if (e.target >= routes_.size()) continue;
        Route& r = routes_[e.target];
        if (e.type == KNP_EVENT_SYNCED && !r.synced) {
            r.synced = true;
            ++syncedTargets_;
        }
        if (r.core && (e.type == KNP_EVENT_ADDED || e.type == KNP_EVENT_MODIFIED || e.type == KNP_EVENT_DELETED)) {
            boost::system::error_code ec;
            json::value v = json::parse(e.json(), ec);
            Status s = ec || !v.is_object() ? Status(makeError("not a JSON object"))
                                            : cluster_.apply(e.type, *r.core, v.as_object());
            if (!s) {
                // The object keeps its last good state; everything else goes on.
                out.errors.push_back(
                    s.error().withContext(fmt::format("{} {}/{}: ", watches_.targets()[e.target].kind, e.ns, e.name)));
            } else {
                podsChanged_ = true;
            }
        }
        for (size_t w : r.pipelineWatches) {
            pipeline_.queueEvent(w, e.type, e.object, e.ns, e.name);
            pipelineChanged_ = true;
        }
    }
    if (!synced_) {
        // Counted from the SYNCED events consumed here, not from the reflectors' state: one
        // could have synced after our drain(), with its objects still queued.
        if (syncedTargets_ < routes_.size()) return out;
        synced_ = true;
        logf(LogLevel::Info, "knpd: every watch has synced ({} targets)", routes_.size());
    }
    if (!podsChanged_ && !pipelineChanged_) return out;
    out.cluster = cluster_.build(localNode_);
    auto errors = pipeline_.flush(podsChanged_ ? KNP_UPDATE_PODS_CHANGED : 0, *out.cluster);
    out.errors.insert(out.errors.end(), errors.begin(), errors.end());
    podsChanged_ = pipelineChanged_ = false;
    return out;
}

}  // namespace knp::host
