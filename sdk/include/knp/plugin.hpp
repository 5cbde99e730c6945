// knp C++ SDK — a header-only layer over <knp/plugin_api.h>.
//
// SPDX-License-Identifier: Apache-2.0
//
// A plugin is a class deriving from knp::Plugin<Self, Snapshot> plus one KNP_EXPORT_PLUGIN line:
//
//   struct Snap {
//     knp::Interest interest;                                    // optional member
//     knp::Decision evaluateIngress(const knp::EvalArgs&) const; // either or both
//     knp::Decision evaluateEgress(const knp::EvalArgs&) const;
//   };
//   class Mine : public knp::Plugin<Mine, Snap> {
//    public:
//     static constexpr knp::PluginInfo kInfo{"mine", "1.0.0", "what it does"};
//     explicit Mine(const knp::InitContext& ctx);              // throw knp::ConfigError on bad config
//     std::vector<knp::Watch> watches() const;                   // optional
//     std::unique_ptr<Snap> update(const knp::Update& u);        // nullptr = unchanged
//   };
//   KNP_EXPORT_PLUGIN(Mine)
//
// The SDK generates the C descriptor and noexcept trampolines: no exception ever crosses the
// ABI. An exception from the constructor or update() becomes an error value with its message
// (and, for ConfigError, the JSON pointer of the bad key); one from an evaluation becomes an
// error return, to which the host applies the instance's onError.
//
// THREAD: the constructor, watches(), update() and the destructor run on the host's control
// thread. evaluateIngress/evaluateEgress run concurrently on data threads against a snapshot
// that is immutable once update() returned it; they must not allocate or lock if the plugin
// wants to keep the host's packet path allocation- and lock-free.
#ifndef KNP_PLUGIN_HPP
#define KNP_PLUGIN_HPP

#include <knp/plugin_api.h>
#include <knp/types.hpp>

#include <cerrno>
#include <concepts>
#include <cstdio>
#include <exception>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace knp {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// Thrown by a plugin constructor (or update) for bad configuration; `pointer` is the JSON
// pointer of the offending key, e.g. "/rules/0/cidrs/1". The SDK copies both into the host's
// knp_error and returns -EINVAL. Keep the message one line and name the bad value.
// SINCE: 1.0
class ConfigError : public std::runtime_error {
public:
    ConfigError(std::string pointer, const std::string& message)
        : std::runtime_error(message), pointer_(std::move(pointer)) {}
    const std::string& pointer() const noexcept { return pointer_; }

private:
    std::string pointer_;
};

// Appends one reference token to a JSON pointer, escaped as RFC 6901 requires ("~" → "~0",
// "/" → "~1"), so that a ConfigError names a key like "a/b" unambiguously.
// jsonPointer("/rules", 0) == "/rules/0"; jsonPointer("", "a/b") == "/a~1b".
// THREAD: any; allocates, so config parsing only. SINCE: 1.0
inline std::string jsonPointer(std::string_view parent, std::string_view token) {
    std::string out(parent);
    out += '/';
    for (char c : token) {
        if (c == '~') {
            out += "~0";
        } else if (c == '/') {
            out += "~1";
        } else {
            out += c;
        }
    }
    return out;
}
inline std::string jsonPointer(std::string_view parent, size_t index) {
    return jsonPointer(parent, std::to_string(index));
}

namespace detail {
inline void copyOut(char* buf, size_t cap, std::string_view s) noexcept {
    if (buf == nullptr || cap == 0) return;
    size_t n = s.size() < cap - 1 ? s.size() : cap - 1;
    std::memcpy(buf, s.data(), n);
    buf[n] = '\0';
}
inline void fillError(knp_error* err, std::string_view msg, std::string_view ptr = {}) noexcept {
    if (err == nullptr) return;
    copyOut(err->message, err->message_cap, msg);
    copyOut(err->pointer, err->pointer_cap, ptr);
}
// Runs `fn` and turns any exception into a negative errno plus a message in `err`.
template <class Fn>
int32_t guarded(knp_error* err, Fn&& fn) noexcept {
    try {
        return fn();
    } catch (const ConfigError& e) {
        fillError(err, e.what(), e.pointer());
        return -EINVAL;
    } catch (const std::bad_alloc&) {
        fillError(err, "out of memory");
        return -ENOMEM;
    } catch (const std::exception& e) {
        fillError(err, e.what());
        return -EIO;
    } catch (...) {
        fillError(err, "unknown exception");
        return -EIO;
    }
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Host services
// ---------------------------------------------------------------------------------------------

// The host's service table; every call is a no-op when the host left the function NULL.
// OWNERSHIP: a copyable handle; valid from the constructor until the plugin is destroyed.
// THREAD: see knp_host_api (logging, metrics, requestUpdate and the clock from any thread;
// defineMetric and forEachPod on the control thread, forEachPod inside update() only).
// SINCE: 1.0
class Host {
public:
    Host() = default;
    Host(const knp_host_api* api, void* ctx) : api_(api), ctx_(ctx) {}

    bool logEnabled(int32_t level) const noexcept {
        return api_ != nullptr && api_->log_enabled != nullptr && api_->log_enabled(ctx_, level) != 0;
    }
    void log(int32_t level, std::string_view msg) const noexcept {
        if (api_ != nullptr && api_->log != nullptr) api_->log(ctx_, level, toC(msg));
    }
    void error(std::string_view m) const noexcept { log(KNP_LOG_ERROR, m); }
    void warning(std::string_view m) const noexcept { log(KNP_LOG_WARNING, m); }
    void info(std::string_view m) const noexcept { log(KNP_LOG_INFO, m); }
    void debug(std::string_view m) const noexcept { log(KNP_LOG_DEBUG, m); }

    // Returns a metric id, or UINT32_MAX when the host refused (calls with it are no-ops).
    uint32_t defineMetric(int32_t type, std::string_view name, std::string_view help) const noexcept {
        uint32_t id = UINT32_MAX;
        if (api_ == nullptr || api_->metric_define == nullptr ||
            api_->metric_define(ctx_, type, toC(name), toC(help), &id) != 0)
            return UINT32_MAX;
        return id;
    }
    void add(uint32_t id, double v) const noexcept {
        if (id != UINT32_MAX && api_ && api_->metric_add) api_->metric_add(ctx_, id, v);
    }
    void set(uint32_t id, double v) const noexcept {
        if (id != UINT32_MAX && api_ && api_->metric_set) api_->metric_set(ctx_, id, v);
    }
    void observe(uint32_t id, double v) const noexcept {
        if (id != UINT32_MAX && api_ && api_->metric_observe) api_->metric_observe(ctx_, id, v);
    }
    void requestUpdate() const noexcept {
        if (api_ && api_->request_update) api_->request_update(ctx_);
    }
    uint64_t monotonicNs() const noexcept { return api_ && api_->monotonic_ns ? api_->monotonic_ns(ctx_) : 0; }
    // Control thread, inside update() only. `fn(PodView)` returns nothing or bool (false stops).
    // An exception from `fn` stops the iteration and is rethrown here, after the host's
    // for_each_pod has returned: unwinding through the host's frames would cross the ABI.
    template <class Fn>
    void forEachPod(bool localOnly, Fn&& fn) const {
        if (api_ == nullptr || api_->for_each_pod == nullptr) return;
        struct State {
            std::remove_reference_t<Fn>* fn;
            std::exception_ptr error;
        } state{&fn, nullptr};
        auto tramp = [](void* user, const knp_pod* pod) noexcept -> int32_t {
            auto& st = *static_cast<State*>(user);
            try {
                if constexpr (std::is_same_v<decltype((*st.fn)(PodView(pod))), bool>) {
                    return (*st.fn)(PodView(pod)) ? 0 : 1;
                } else {
                    (*st.fn)(PodView(pod));
                    return 0;
                }
            } catch (...) {
                st.error = std::current_exception();
                return 1;
            }
        };
        api_->for_each_pod(ctx_, localOnly ? 1 : 0, tramp, &state);
        if (state.error) std::rethrow_exception(state.error);
    }

private:
    const knp_host_api* api_ = nullptr;
    void* ctx_ = nullptr;
};

// What a plugin constructor receives.
// OWNERSHIP: the string views are borrowed for the constructor call: copy what you keep.
// `host` stays valid for the instance's life. SINCE: 1.0
struct InitContext {
    std::string_view instanceName;
    std::string_view configJson;  // "{}" when the pipeline gives no config
    std::string_view nodeName;    // empty in knpctl simulate
    uint32_t hostAbiMinor = 0;
    Host host;
};

// ---------------------------------------------------------------------------------------------
// Watches and updates
// ---------------------------------------------------------------------------------------------

// One watch; see knp_watch. The `{}` initializers let `{"", "v1", "configmaps", "ConfigMap"}`
// leave the optional selectors out without -Wmissing-field-initializers noise.
struct Watch {
    std::string group{};  // "" for the core group
    std::string version{};
    std::string resource{};        // plural: "networkpolicies"
    std::string kind{};            // "NetworkPolicy"
    std::string watchNamespace{};  // empty = all namespaces
    std::string labelSelector{};
    std::string fieldSelector{};
};

enum class EventType : uint32_t {
    Added = KNP_EVENT_ADDED,
    Modified = KNP_EVENT_MODIFIED,
    Deleted = KNP_EVENT_DELETED,
    Synced = KNP_EVENT_SYNCED,
    Relist = KNP_EVENT_RELIST,
};

// One watch event. OWNERSHIP: borrowed for the update() call; copy what you keep.
// SINCE: 1.0
class EventView {
public:
    explicit EventView(const knp_event* e) : e_(e) {}
    EventType type() const noexcept { return static_cast<EventType>(e_->type); }
    uint32_t watchIndex() const noexcept { return e_->watch_index; }
    std::string_view object() const noexcept { return toView(e_->object); }
    std::string_view objectNamespace() const noexcept { return toView(e_->object_namespace); }
    std::string_view name() const noexcept { return toView(e_->name); }

private:
    const knp_event* e_;
};

// One pod that entered, left or changed in the host's index; see knp_pod_change.
// `before`/`after` are null views when the pod was not / is no longer in the index.
// OWNERSHIP: borrowed for the update() call. SINCE: 1.1
struct PodChange {
    PodView before;
    PodView after;
};

// One update() call: a batch of events plus whether the host's pod index changed, and (from a
// 1.1 host) which pods changed.
// OWNERSHIP: borrowed for the call. THREAD: control thread. SINCE: 1.0
class Update {
public:
    Update(const knp_update_args* a, const Host& host) : a_(a), host_(host) {}
    size_t size() const noexcept { return a_->n_events; }
    EventView operator[](size_t i) const noexcept { return EventView(a_->events[i]); }
    bool podsChanged() const noexcept { return (a_->flags & KNP_UPDATE_PODS_CHANGED) != 0; }
    const Host& host() const noexcept { return host_; }

    // True when podChanges() lists every pod difference since this instance's previous
    // update(); false means "walk host().forEachPod() to find out" (first update, a 1.0 host,
    // the previous update() failed). SINCE: 1.1
    bool hasPodChanges() const noexcept {
        return podsChanged() && (a_->flags & KNP_UPDATE_POD_CHANGES) != 0 &&
               KNP_HAS_MEMBER(knp_update_args, a_->struct_size, n_pod_changes);
    }
    size_t podChangeCount() const noexcept { return hasPodChanges() ? a_->n_pod_changes : 0; }
    PodChange podChange(size_t i) const noexcept {
        const knp_pod_change* c = a_->pod_changes[i];
        return {PodView(c->before), PodView(c->after)};
    }

    struct Iterator {
        const knp_event* const* p;
        EventView operator*() const noexcept { return EventView(*p); }
        Iterator& operator++() noexcept {
            ++p;
            return *this;
        }
        bool operator!=(const Iterator& o) const noexcept { return p != o.p; }
    };
    Iterator begin() const noexcept { return {a_->events}; }
    Iterator end() const noexcept { return {a_->events + a_->n_events}; }

private:
    const knp_update_args* a_;
    const Host& host_;
};

// ---------------------------------------------------------------------------------------------
// Interest
// ---------------------------------------------------------------------------------------------

// One direction's interest; see knp_direction_interest.
struct DirectionInterest {
    bool divertAll = false;
    bool localPods = false;  // every pod on this node; see KNP_INTEREST_LOCAL_PODS
    uint32_t protocols = 0;  // KNP_PROTO_BIT_*; 0 = all
    std::vector<knp_cidr> local;
    std::vector<knp_cidr> remote;
    std::vector<knp_port_range> dstPorts;  // empty = all

    bool empty() const noexcept { return !divertAll && !localPods && local.empty() && remote.empty(); }
};

// A snapshot's interest. Keep it inside the snapshot (a member named `interest`); the SDK
// builds the C view once, on the control thread, when update() returns.
// OWNERSHIP: the C view points into this object, which is why it must live in the snapshot:
// the host reads it until the snapshot is released. SINCE: 1.0
class Interest {
public:
    DirectionInterest ingress;
    DirectionInterest egress;

    // Builds (or rebuilds) the C view. The vectors must not change afterwards.
    const knp_interest* finalize() noexcept {
        fill(cIngress_, ingress);
        fill(cEgress_, egress);
        c_ = {};
        c_.struct_size = sizeof c_;
        c_.ingress = ingress.empty() ? nullptr : &cIngress_;
        c_.egress = egress.empty() ? nullptr : &cEgress_;
        return &c_;
    }

private:
    static void fill(knp_direction_interest& c, const DirectionInterest& d) noexcept {
        c = {};
        c.struct_size = sizeof c;
        c.flags = (d.divertAll ? KNP_INTEREST_DIVERT_ALL : 0u) | (d.localPods ? KNP_INTEREST_LOCAL_PODS : 0u);
        c.protocols = d.protocols;
        c.local = d.local.data();
        c.n_local = d.local.size();
        c.remote = d.remote.data();
        c.n_remote = d.remote.size();
        c.dst_ports = d.dstPorts.data();
        c.n_dst_ports = d.dstPorts.size();
    }
    knp_direction_interest cIngress_{};
    knp_direction_interest cEgress_{};
    knp_interest c_{};
};

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

enum class Verdict : int32_t {
    Next = KNP_VERDICT_NEXT,
    Accept = KNP_VERDICT_ACCEPT,
    Deny = KNP_VERDICT_DENY,
};

// What an evaluation returns. `reason` and `rule` must outlive the snapshot's release: use
// string literals or strings the snapshot owns (never a string built during the call).
// SINCE: 1.0
struct Decision {
    Verdict verdict = Verdict::Next;
    std::string_view reason;
    std::string_view rule;

    static constexpr Decision next() noexcept { return {}; }
    static constexpr Decision accept(std::string_view reason = {}, std::string_view rule = {}) noexcept {
        return {Verdict::Accept, reason, rule};
    }
    static constexpr Decision deny(std::string_view reason = {}, std::string_view rule = {}) noexcept {
        return {Verdict::Deny, reason, rule};
    }
};

// The arguments of one evaluation. OWNERSHIP: borrowed for the call.
// THREAD: data threads, concurrently. SINCE: 1.0
class EvalArgs {
public:
    explicit EvalArgs(const knp_eval_args* a) noexcept : a_(a) {}
    PacketView packet() const noexcept { return PacketView(a_->packet); }
    // Empty (operator bool false) when that end is not a pod.
    PodView srcPod() const noexcept { return PodView(a_->src_pod); }
    PodView dstPod() const noexcept { return PodView(a_->dst_pod); }
    const knp_eval_args* raw() const noexcept { return a_; }

private:
    const knp_eval_args* a_;
};

// ---------------------------------------------------------------------------------------------
// The plugin base and the generated C descriptor
// ---------------------------------------------------------------------------------------------

// The descriptor's static strings. All must be string literals (the descriptor is constant
// data). SINCE: 1.0
struct PluginInfo {
    const char* name;
    const char* version;
    const char* description;
    const char* contact = "";
    const char* license = "Apache-2.0";
    const char* configSchema = nullptr;
};

template <class Derived, class SnapshotT>
class Plugin {
public:
    using Snapshot = SnapshotT;

    explicit Plugin(const InitContext& ctx)
        : host_(ctx.host), instanceName_(ctx.instanceName), nodeName_(ctx.nodeName) {}

    const Host& host() const noexcept { return host_; }
    const std::string& instanceName() const noexcept { return instanceName_; }
    const std::string& nodeName() const noexcept { return nodeName_; }

    // Constant-initialized: the entry symbol hands out static data and runs no code, as the
    // ABI promises (no guard variable, nothing to construct at dlopen or first call).
    static const knp_plugin_descriptor* descriptor() noexcept {
        static constexpr knp_plugin_descriptor d = makeDescriptor();
        return &d;
    }

private:
    static constexpr bool kHasIngress = requires(const SnapshotT& s, const EvalArgs& a) {
        { s.evaluateIngress(a) } -> std::same_as<Decision>;
    };
    static constexpr bool kHasEgress = requires(const SnapshotT& s, const EvalArgs& a) {
        { s.evaluateEgress(a) } -> std::same_as<Decision>;
    };
    static constexpr bool kHasWatches = requires(const Derived& d) {
        { d.watches() } -> std::same_as<std::vector<Watch>>;
    };
    static constexpr bool kHasInterest = requires(SnapshotT & s) {
        { s.interest } -> std::convertible_to<Interest&>;
    };
    static_assert(
        kHasIngress || kHasEgress,
        "the snapshot type needs evaluateIngress and/or evaluateEgress(const knp::EvalArgs&) const -> knp::Decision");

    static constexpr knp_plugin_descriptor makeDescriptor() noexcept {
        knp_plugin_descriptor d{};
        d.struct_size = sizeof d;
        d.abi_major = KNP_ABI_MAJOR;
        d.abi_minor = KNP_ABI_MINOR;
        d.name = Derived::kInfo.name;
        d.version = Derived::kInfo.version;
        d.description = Derived::kInfo.description;
        d.contact = Derived::kInfo.contact;
        d.license = Derived::kInfo.license;
        d.config_schema = Derived::kInfo.configSchema;
        d.capabilities = (kHasIngress ? KNP_CAP_INGRESS : 0u) | (kHasEgress ? KNP_CAP_EGRESS : 0u);
        d.init = &initT;
        d.destroy = &destroyT;
        d.get_watches = &getWatchesT;
        d.update = &updateT;
        d.release_snapshot = &releaseT;
        // `if constexpr`, not `?:`: naming evalT<false> would instantiate a call to a member
        // the snapshot type does not have.
        if constexpr (kHasIngress) d.evaluate_ingress = &evalT<true>;
        if constexpr (kHasEgress) d.evaluate_egress = &evalT<false>;
        return d;
    }

    // The C watch array lives next to the instance for its whole life.
    struct Watches {
        std::vector<Watch> owned;
        std::vector<knp_watch> c;
        std::vector<const knp_watch*> ptrs;
    };
    // What the opaque knp_plugin* points at.
    struct Box {
        std::unique_ptr<Derived> self;
        Watches watches;
    };

    static int32_t initT(const knp_init_args* a, knp_plugin** out, knp_error* err) noexcept {
        return detail::guarded(err, [&]() -> int32_t {
            if (a == nullptr || out == nullptr) {
                detail::fillError(err, "init called without args or out_plugin");
                return -EINVAL;
            }
            InitContext ctx;
            ctx.instanceName = toView(a->instance_name);
            ctx.configJson = a->config_json.len ? toView(a->config_json) : std::string_view("{}");
            ctx.nodeName = toView(a->node_name);
            ctx.hostAbiMinor = a->host_abi_minor;
            ctx.host = Host(a->host, a->host_ctx);
            auto box = std::make_unique<Box>();
            box->self = std::make_unique<Derived>(ctx);
            if constexpr (kHasWatches) {
                Watches& w = box->watches;
                w.owned = box->self->watches();
                w.c.reserve(w.owned.size());
                for (const Watch& x : w.owned) {
                    knp_watch c{};
                    c.struct_size = sizeof c;
                    c.group = toC(x.group);
                    c.version = toC(x.version);
                    c.resource = toC(x.resource);
                    c.kind = toC(x.kind);
                    c.watch_namespace = toC(x.watchNamespace);
                    c.label_selector = toC(x.labelSelector);
                    c.field_selector = toC(x.fieldSelector);
                    w.c.push_back(c);
                }
                for (const knp_watch& c : w.c) w.ptrs.push_back(&c);
            }
            *out = reinterpret_cast<knp_plugin*>(box.release());
            return KNP_OK;
        });
    }

    static void destroyT(knp_plugin* p) noexcept {
        // A throwing destructor would terminate here, which is the right outcome for a plugin
        // that cannot clean up: it cannot escape across the ABI.
        delete reinterpret_cast<Box*>(p);
    }

    static int32_t getWatchesT(knp_plugin* p, const knp_watch* const** out, size_t* n) noexcept {
        if (p == nullptr || out == nullptr || n == nullptr) return -EINVAL;
        auto* box = reinterpret_cast<Box*>(p);
        *out = box->watches.ptrs.data();
        *n = box->watches.ptrs.size();
        return KNP_OK;
    }

    static int32_t updateT(knp_plugin* p, const knp_update_args* a, knp_update_result* out, knp_error* err) noexcept {
        return detail::guarded(err, [&]() -> int32_t {
            if (p == nullptr || a == nullptr || out == nullptr) {
                detail::fillError(err, "update called without plugin, args or result");
                return -EINVAL;
            }
            auto* box = reinterpret_cast<Box*>(p);
            Update u(a, box->self->host());
            std::unique_ptr<SnapshotT> snap = box->self->update(u);
            if (!snap) return KNP_OK;  // unchanged
            if constexpr (kHasInterest) {
                out->interest = static_cast<Interest&>(snap->interest).finalize();
            }
            out->snapshot = snap.release();
            return KNP_OK;
        });
    }

    static void releaseT(knp_plugin*, void* snapshot) noexcept { delete static_cast<SnapshotT*>(snapshot); }

    template <bool kIngress>
    static int32_t evalT(const void* snapshot, const knp_eval_args* a, knp_eval_result* out) noexcept {
        // PacketView dereferences the packet unchecked, so a missing one is refused here.
        if (snapshot == nullptr || a == nullptr || a->packet == nullptr || out == nullptr) return -EINVAL;
        try {
            const auto* s = static_cast<const SnapshotT*>(snapshot);
            EvalArgs args(a);
            Decision d;
            if constexpr (kIngress) {
                d = s->evaluateIngress(args);
            } else {
                d = s->evaluateEgress(args);
            }
            out->verdict = static_cast<int32_t>(d.verdict);
            out->reason = toC(d.reason);
            out->rule = toC(d.rule);
            return KNP_OK;
        } catch (const std::bad_alloc&) {
            return -ENOMEM;
        } catch (...) {
            return -EIO;
        }
    }

    Host host_;
    std::string instanceName_;
    std::string nodeName_;
};

}  // namespace knp

// Exports the entry symbol for plugin class `Cls`. Use once per shared object.
#define KNP_EXPORT_PLUGIN(Cls) \
    extern "C" KNP_PLUGIN_EXPORT const knp_plugin_descriptor* knp_plugin_entry_v1(void) { return Cls::descriptor(); }

#endif  // KNP_PLUGIN_HPP
