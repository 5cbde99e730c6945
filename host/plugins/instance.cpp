#include "plugins/instance.hpp"

#include <time.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace knp::host {

std::string_view onErrorName(OnError e) noexcept {
    switch (e) {
        case OnError::Deny:
            return "deny";
        case OnError::Accept:
            return "accept";
        case OnError::Next:
            return "next";
    }
    return "deny";
}

int32_t onErrorVerdict(OnError e) noexcept {
    switch (e) {
        case OnError::Accept:
            return KNP_VERDICT_ACCEPT;
        case OnError::Next:
            return KNP_VERDICT_NEXT;
        case OnError::Deny:
            break;
    }
    return KNP_VERDICT_DENY;
}

std::string WatchSpec::describe() const {
    std::string s = fmt::format("{}/{}", group.empty() ? "core" : group, version) + " " + resource;
    if (!watchNamespace.empty()) s += " namespace=" + watchNamespace;
    if (!labelSelector.empty()) s += " labels=" + labelSelector;
    if (!fieldSelector.empty()) s += " fields=" + fieldSelector;
    return s;
}

// ---------------------------------------------------------------------------------------------
// Host services behind knp_host_api
// ---------------------------------------------------------------------------------------------

struct PluginInstance::HostContext {
    // A bounded metric table: ids are indexes, values are atomics so data threads can add
    // without locks. The ops layer exports them (labelled with the instance name).
    static constexpr uint32_t kMaxMetrics = 64;
    static constexpr size_t kMaxMetricName = 128;
    struct Metric {
        std::string name, help;
        int32_t type = 0;
        std::atomic<double> value{0};
        std::atomic<double> sum{0};
        std::atomic<uint64_t> count{0};
        std::array<std::atomic<uint64_t>, PluginMetricSample::kBounds.size() + 1> buckets{};
    };

    std::string instance;
    std::array<Metric, kMaxMetrics> metrics;
    std::atomic<uint32_t> nMetrics{0};
    std::atomic<bool> updateRequested{false};
    const PodIterator* podIterator = nullptr;  // set only during update()
    knp_host_api api{};

    static HostContext* of(void* ctx) { return static_cast<HostContext*>(ctx); }

    static void log(void* ctx, int32_t level, knp_str msg) {
        if (level < 0) level = 0;
        if (level > 4) level = 4;
        auto lvl = static_cast<LogLevel>(level);
        if (!logEnabled(lvl)) return;
        logf(lvl, "plugin={:?} {}", of(ctx)->instance, std::string_view(msg.data, msg.len));
    }
    static int32_t logEnabledCb(void*, int32_t level) {
        return logEnabled(static_cast<LogLevel>(level < 0 ? 0 : level > 4 ? 4 : level)) ? 1 : 0;
    }
    static int32_t metricDefine(void* ctx, int32_t type, knp_str name, knp_str help, uint32_t* outId) {
        auto* c = of(ctx);
        if (outId == nullptr || type < KNP_METRIC_COUNTER || type > KNP_METRIC_HISTOGRAM) return -EINVAL;
        uint32_t n = c->nMetrics.load();
        std::string_view nv(name.data, name.len);
        // The name becomes part of a Prometheus metric name (knp_plugin_<name>).
        bool valid = !nv.empty() && nv.size() <= kMaxMetricName && !(nv[0] >= '0' && nv[0] <= '9');
        for (char ch : nv)
            valid = valid &&
                    ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_');
        if (!valid) {
            logf(LogLevel::Warning,
                 "plugin={:?} metric name {:?} refused: use [a-zA-Z_][a-zA-Z0-9_]*, at most {} bytes", c->instance, nv,
                 kMaxMetricName);
            return -EINVAL;
        }
        for (uint32_t i = 0; i < n; ++i) {
            if (c->metrics[i].name == nv) {
                *outId = i;
                return 0;
            }
        }
        if (n >= kMaxMetrics) return -ENOSPC;
        c->metrics[n].name = nv;
        c->metrics[n].help = std::string(help.data, help.len);
        c->metrics[n].type = type;
        c->nMetrics.store(n + 1);
        *outId = n;
        return 0;
    }
    static Metric* metric(void* ctx, uint32_t id) {
        auto* c = of(ctx);
        return id < c->nMetrics.load(std::memory_order_acquire) ? &c->metrics[id] : nullptr;
    }
    static void metricAdd(void* ctx, uint32_t id, double v) {
        if (auto* m = metric(ctx, id)) m->value.fetch_add(v, std::memory_order_relaxed);
    }
    static void metricSet(void* ctx, uint32_t id, double v) {
        if (auto* m = metric(ctx, id)) m->value.store(v, std::memory_order_relaxed);
    }
    static void metricObserve(void* ctx, uint32_t id, double v) {
        if (auto* m = metric(ctx, id)) {
            size_t i = 0;
            while (i < PluginMetricSample::kBounds.size() && v > PluginMetricSample::kBounds[i]) ++i;
            m->buckets[i].fetch_add(1, std::memory_order_relaxed);
            m->sum.fetch_add(v, std::memory_order_relaxed);
            m->count.fetch_add(1, std::memory_order_relaxed);
        }
    }
    static void requestUpdate(void* ctx) { of(ctx)->updateRequested.store(true); }
    static uint64_t monotonicNs(void*) {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
    }
    static int32_t forEachPod(void* ctx, int32_t localOnly, int32_t (*fn)(void*, const knp_pod*), void* user) {
        auto* c = of(ctx);
        if (fn == nullptr) return -EINVAL;
        if (c->podIterator == nullptr) {
            logf(LogLevel::Warning, "plugin={:?} called for_each_pod outside update(); ignored", c->instance);
            return -EPERM;
        }
        return (*c->podIterator)(localOnly != 0, fn, user);
    }

    explicit HostContext(std::string name) : instance(std::move(name)) {
        api.struct_size = sizeof api;
        api.log = &log;
        api.log_enabled = &logEnabledCb;
        api.metric_define = &metricDefine;
        api.metric_add = &metricAdd;
        api.metric_set = &metricSet;
        api.metric_observe = &metricObserve;
        api.request_update = &requestUpdate;
        api.monotonic_ns = &monotonicNs;
        api.for_each_pod = &forEachPod;
    }
};

namespace {

std::string str(knp_str s) { return s.len ? std::string(s.data, s.len) : std::string(); }

// Error buffers a plugin fills on a failing control call.
struct ErrorBuffer {
    char message[512] = {};
    char pointer[256] = {};
    knp_error err{};
    ErrorBuffer() {
        err.struct_size = sizeof err;
        err.message = message;
        err.message_cap = sizeof message;
        err.pointer = pointer;
        err.pointer_cap = sizeof pointer;
    }
    std::string describe(int32_t rc) const {
        std::string m(message, strnlen(message, sizeof message));
        if (m.empty()) m = fmt::format("failed with {} ({})", rc, std::strerror(rc < 0 ? -rc : rc));
        return m;
    }
    std::string ptr() const { return std::string(pointer, strnlen(pointer, sizeof pointer)); }
};

// Limits on what one snapshot may ask the host to install, so a buggy plugin cannot exhaust
// kernel set memory.
constexpr size_t kMaxInterestCidrs = 1u << 20;
constexpr size_t kMaxInterestPorts = 1u << 16;

Status copyDirection(const knp_direction_interest* in, DirectionInterestSet& out, const char* dir) {
    if (in == nullptr) return okStatus();
    if (in->struct_size < offsetof(knp_direction_interest, n_dst_ports) + sizeof(size_t))
        return makeError("{} interest struct_size {} is too small", dir, in->struct_size);
    if (in->n_local > kMaxInterestCidrs || in->n_remote > kMaxInterestCidrs || in->n_dst_ports > kMaxInterestPorts)
        return makeError("{} interest is larger than the host's limits", dir);
    if ((in->n_local && !in->local) || (in->n_remote && !in->remote) || (in->n_dst_ports && !in->dst_ports))
        return makeError("{} interest has a NULL array with a non-zero count", dir);
    constexpr uint32_t kKnownFlags = KNP_INTEREST_DIVERT_ALL | KNP_INTEREST_LOCAL_PODS;
    if ((in->flags & ~kKnownFlags) != 0)
        return makeError("{} interest has unknown flags {:#x}", dir, in->flags & ~kKnownFlags);
    out.divertAll = (in->flags & KNP_INTEREST_DIVERT_ALL) != 0;
    out.localPods = (in->flags & KNP_INTEREST_LOCAL_PODS) != 0;
    out.protocols = in->protocols;
    auto cidrs = [&](const knp_cidr* p, size_t n, std::vector<knp_cidr>& v, const char* what) -> Status {
        v.assign(p, p + n);
        for (const auto& c : v) {
            unsigned max = c.addr.family == KNP_FAMILY_IPV4 ? 32 : c.addr.family == KNP_FAMILY_IPV6 ? 128 : 0;
            if (max == 0 || c.prefix_len > max)
                return makeError("{} interest {} has an invalid CIDR (family {}, /{})", dir, what, c.addr.family,
                                 c.prefix_len);
        }
        return okStatus();
    };
    if (auto s = cidrs(in->local, in->n_local, out.local, "local"); !s) return s;
    if (auto s = cidrs(in->remote, in->n_remote, out.remote, "remote"); !s) return s;
    out.dstPorts.assign(in->dst_ports, in->dst_ports + in->n_dst_ports);
    for (const auto& r : out.dstPorts)
        if (r.first > r.last) return makeError("{} interest has a reversed port range {}-{}", dir, r.first, r.last);
    return okStatus();
}

}  // namespace

PluginInstance::PluginInstance(const PluginLibrary& lib, InstanceOptions options)
    : lib_(lib),
      options_(std::move(options)),
      ctx_(std::make_unique<HostContext>(options_.name)),
      stats_(std::make_unique<InstanceStats>()) {}

std::variant<std::unique_ptr<PluginInstance>, PluginInstance::InitError> PluginInstance::create(
    const PluginLibrary& lib, InstanceOptions options) {
    std::unique_ptr<PluginInstance> self(new PluginInstance(lib, std::move(options)));
    const auto& d = self->descriptor();

    knp_init_args args{};
    args.struct_size = sizeof args;
    args.host_abi_minor = KNP_ABI_MINOR;
    args.instance_name = {self->options_.name.data(), self->options_.name.size()};
    args.config_json = {self->options_.configJson.data(), self->options_.configJson.size()};
    args.node_name = {self->options_.nodeName.data(), self->options_.nodeName.size()};
    args.host = &self->ctx_->api;
    args.host_ctx = self->ctx_.get();

    ErrorBuffer eb;
    int32_t rc = 0;
    try {
        rc = d.init(&args, &self->plugin_, &eb.err);
    } catch (...) {
        return InitError{makeError("init threw an exception across the plugin ABI (a plugin bug)"), {}};
    }
    if (rc != 0) return InitError{Error{eb.describe(rc)}, eb.ptr()};
    if (self->plugin_ == nullptr) return InitError{makeError("init succeeded but returned no instance"), {}};

    if (d.get_watches != nullptr) {
        const knp_watch* const* ws = nullptr;
        size_t n = 0;
        try {
            rc = d.get_watches(self->plugin_, &ws, &n);
        } catch (...) {
            return InitError{makeError("get_watches threw an exception across the plugin ABI"), {}};
        }
        if (rc != 0) return InitError{makeError("get_watches failed with {}", rc), {}};
        constexpr size_t kMaxWatches = 64;
        if (n > kMaxWatches) return InitError{makeError("asks for {} watches; the limit is {}", n, kMaxWatches), {}};
        for (size_t i = 0; i < n; ++i) {
            const knp_watch* w = ws[i];
            if (w == nullptr || w->struct_size < offsetof(knp_watch, field_selector) + sizeof(knp_str))
                return InitError{makeError("watch {} is NULL or too small", i), {}};
            WatchSpec s{str(w->group),           str(w->version),        str(w->resource),      str(w->kind),
                        str(w->watch_namespace), str(w->label_selector), str(w->field_selector)};
            if (s.version.empty() || s.resource.empty())
                return InitError{makeError("watch {} has no version or resource", i), {}};
            self->watches_.push_back(std::move(s));
        }
    }
    return self;
}

PluginInstance::~PluginInstance() {
    if (plugin_ == nullptr) return;
    try {
        descriptor().destroy(plugin_);
    } catch (...) {
        logf(LogLevel::Error, "plugin={:?} destroy threw an exception across the plugin ABI", name());
    }
}

Result<PluginInstance::UpdateOutcome> PluginInstance::update(const std::vector<const knp_event*>& events,
                                                             uint32_t flags, const PodIterator& podIterator,
                                                             const std::vector<const knp_pod_change*>* podChanges) {
    knp_update_args args{};
    args.struct_size = sizeof args;
    args.flags = flags & ~KNP_UPDATE_POD_CHANGES;
    args.events = events.data();
    args.n_events = events.size();
    // A 1.0 plugin may treat any flag it does not know as an error: only 1.1+ ones get the list.
    if (podChanges != nullptr && (flags & KNP_UPDATE_PODS_CHANGED) != 0 && descriptor().abi_minor >= 1) {
        args.flags |= KNP_UPDATE_POD_CHANGES;
        args.pod_changes = podChanges->data();
        args.n_pod_changes = podChanges->size();
    }
    knp_update_result out{};
    out.struct_size = sizeof out;
    ErrorBuffer eb;
    ctx_->podIterator = &podIterator;
    ctx_->updateRequested.store(false);
    int32_t rc = 0;
    try {
        rc = descriptor().update(plugin_, &args, &out, &eb.err);
    } catch (...) {
        ctx_->podIterator = nullptr;
        return makeError("update threw an exception across the plugin ABI (a plugin bug)");
    }
    ctx_->podIterator = nullptr;
    // On failure `out` is ignored (the ABI says so): the plugin owns whatever it left there.
    if (rc != 0) return Error{eb.describe(rc)};
    UpdateOutcome r;
    r.snapshot = out.snapshot;
    if (out.snapshot != nullptr && out.interest != nullptr) {
        const knp_interest* in = out.interest;
        Status s = in->struct_size < offsetof(knp_interest, egress) + sizeof(void*)
                       ? Status(makeError("interest struct_size {} is too small", in->struct_size))
                       : okStatus();
        if (s) s = copyDirection(in->ingress, r.interest.ingress, "ingress");
        if (s) s = copyDirection(in->egress, r.interest.egress, "egress");
        if (!s) {
            release(out.snapshot);
            return std::move(s).error();
        }
    }
    return r;
}

void PluginInstance::release(void* snapshot) noexcept {
    if (snapshot == nullptr) return;
    try {
        descriptor().release_snapshot(plugin_, snapshot);
    } catch (...) {
        logf(LogLevel::Error, "plugin={:?} release_snapshot threw an exception across the plugin ABI", name());
    }
}

int32_t PluginInstance::evaluate(Direction d, const void* snapshot, const knp_eval_args& args,
                                 knp_eval_result& out) const noexcept {
    auto fn = d == Direction::Ingress ? lib_.descriptor->evaluate_ingress : lib_.descriptor->evaluate_egress;
    try {
        return fn(snapshot, &args, &out);
    } catch (...) {
        return -EIO;
    }
}

InstanceStats::Totals InstanceStats::totals() const noexcept {
    Totals t;
    for (const Slot& s : slots_) {
        for (size_t d = 0; d < 2; ++d) {
            t.time[d].add(s.time[d]);
            for (size_t v = 0; v < 3; ++v) t.verdicts[d][v] += s.verdicts[d][v].get();
            for (size_t o = 0; o < kEvalOutcomes; ++o) t.outcomes[d][o] += s.outcomes[d][o].get();
        }
    }
    return t;
}

std::vector<PluginMetricSample> PluginInstance::pluginMetrics() const {
    // Entries below nMetrics are complete (metric_define publishes the count last) and their
    // name, help and type never change again.
    uint32_t n = ctx_->nMetrics.load(std::memory_order_acquire);
    std::vector<PluginMetricSample> out(n);
    for (uint32_t i = 0; i < n; ++i) {
        const HostContext::Metric& m = ctx_->metrics[i];
        PluginMetricSample& s = out[i];
        s.name = m.name;
        s.help = m.help;
        s.type = m.type;
        s.value = m.value.load(std::memory_order_relaxed);
        s.sum = m.sum.load(std::memory_order_relaxed);
        for (size_t b = 0; b < s.buckets.size(); ++b) s.buckets[b] = m.buckets[b].load(std::memory_order_relaxed);
    }
    return out;
}

}  // namespace knp::host
