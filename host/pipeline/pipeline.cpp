#include "pipeline/pipeline.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace knp::host {

Result<std::unique_ptr<Pipeline>> Pipeline::load(const PipelineConfig& config, const LoadOptions& options) {
    std::unique_ptr<Pipeline> p(new Pipeline());
    p->config_ = config;
    for (const InstanceConfig& ic : config.instances) {
        if (!ic.enabled) continue;
        std::string where = fmt::format("{}:{}: {} ({:?}): ", config.file, ic.line, ic.field, ic.name);
        auto path = resolveLibrary(ic.library, options.searchPath, config.dir);
        if (!path) return std::move(path).error().withContext(where + "library: ");
        auto lib = loadPluginLibrary(*path, options.trust);
        if (!lib) return std::move(lib).error().withContext(where);
        InstanceOptions io;
        io.name = ic.name;
        io.configJson = ic.configJson;
        io.onError = ic.onError;
        io.nodeName = options.nodeName;
        auto created = PluginInstance::create(**lib, std::move(io));
        if (auto* err = std::get_if<PluginInstance::InitError>(&created)) {
            if (!err->configPointer.empty()) {
                return err->error.withContext(fmt::format("{}:{}: {} ({:?}): config{}: ", config.file,
                                                          config.lineOf(ic, err->configPointer), ic.field, ic.name,
                                                          err->configPointer));
            }
            return err->error.withContext(where + fmt::format("{}: ", (*lib)->path));
        }
        p->instances_.push_back(std::move(std::get<0>(created)));
    }

    // De-duplicate watches: identical requests share one stream and the same event bytes.
    for (size_t i = 0; i < p->instances_.size(); ++i) {
        const auto& ws = p->instances_[i]->watches();
        for (uint32_t w = 0; w < ws.size(); ++w) {
            auto it = std::find(p->watches_.begin(), p->watches_.end(), ws[w]);
            size_t idx = static_cast<size_t>(it - p->watches_.begin());
            if (it == p->watches_.end()) {
                p->watches_.push_back(ws[w]);
                p->subscribers_.emplace_back();
            }
            p->subscribers_[idx].push_back({i, w});
        }
    }
    p->queued_.resize(p->instances_.size());
    p->snapshots_.resize(p->instances_.size());
    p->seen_.resize(p->instances_.size());
    return p;
}

Pipeline::~Pipeline() {
    // Snapshots go before the instances that must release them.
    current_.reset();
    snapshots_.clear();
    queued_.clear();
}

void Pipeline::queueEvent(size_t watch, uint32_t type, std::string objectJson, std::string ns, std::string name) {
    queueEvent(watch, type, std::make_shared<const std::string>(std::move(objectJson)), std::move(ns), std::move(name));
}

void Pipeline::queueEvent(size_t watch, uint32_t type, std::shared_ptr<const std::string> object, std::string ns,
                          std::string name) {
    if (watch >= subscribers_.size()) return;
    if (!object) object = std::make_shared<const std::string>();
    for (const Subscriber& s : subscribers_[watch])
        queued_[s.instance].push_back({type, s.watchIndex, object, ns, name});
}

std::vector<Error> Pipeline::flush(uint32_t flags, const ClusterSnapshot& cluster) {
    std::vector<Error> errors;
    bool changed = false;
    PodIterator pods = [&cluster](bool localOnly, int32_t (*fn)(void*, const knp_pod*), void* user) {
        return cluster.forEachPod(localOnly, fn, user);
    };
    for (size_t i = 0; i < instances_.size(); ++i) {
        auto& queue = queued_[i];
        bool needed = !flushed_ || !queue.empty() || (flags & KNP_UPDATE_PODS_CHANGED) != 0;
        if (!needed) {
            // No pod changed since its last update, so what it saw then is this build too.
            if (seen_[i] != 0) seen_[i] = cluster.generation();
            continue;
        }
        std::vector<knp_event> events(queue.size());
        std::vector<const knp_event*> ptrs(queue.size());
        for (size_t e = 0; e < queue.size(); ++e) {
            const QueuedEvent& q = queue[e];
            knp_event& ev = events[e];
            ev.struct_size = sizeof ev;
            ev.type = q.type;
            ev.watch_index = q.watchIndex;
            ev.object = {q.object->data(), q.object->size()};
            ev.object_namespace = {q.ns.data(), q.ns.size()};
            ev.name = {q.name.data(), q.name.size()};
            ptrs[e] = &ev;
        }
        auto& inst = *instances_[i];
        // The pod delta fits only an instance whose last update saw the build just before this one.
        const auto* changes = seen_[i] != 0 ? cluster.podChangesSince(seen_[i]) : nullptr;
        auto out = inst.update(ptrs, flags, pods, changes);
        queue.clear();
        if (!out) {
            // The plugin may have half-applied the update: it walks the pods next time.
            seen_[i] = 0;
            errors.push_back(std::move(out).error().withContext(fmt::format("plugin {:?}: update: ", inst.name())));
            continue;
        }
        seen_[i] = cluster.generation();
        if (out->snapshot != nullptr) {
            snapshots_[i] = std::make_shared<const PluginSnapshot>(inst, out->snapshot, std::move(out->interest));
            changed = true;
        }
    }
    if (changed || !current_) {
        auto snap = std::make_shared<PipelineSnapshot>();
        snap->ready_ = true;
        for (size_t i = 0; i < instances_.size(); ++i) {
            const auto& inst = *instances_[i];
            Stage st{&inst, snapshots_[i] ? snapshots_[i]->get() : nullptr};
            if (st.snapshot == nullptr) snap->ready_ = false;
            if (inst.handles(Direction::Ingress)) snap->ingress_.push_back(st);
            if (inst.handles(Direction::Egress)) snap->egress_.push_back(st);
            snap->held_.push_back(snapshots_[i]);
        }
        current_ = std::move(snap);
    }
    flushed_ = true;
    return errors;
}

}  // namespace knp::host
