// One plugin instance: a pipeline.yaml entry bound to a loaded library through the C ABI.
//
// THREAD: create, watches, update, release and the destructor run on the control thread.
// evaluate() is thread-safe (data threads) and never allocates or locks: it is one indirect
// call guarded by a catch(...) so a plugin that lets an exception escape the ABI is turned
// into an error value instead of terminating the host.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <knp/plugin_api.h>

#include "common/result.hpp"
#include "plugins/library.hpp"

namespace knp::host {

enum class OnError { Deny, Accept, Next };
std::string_view onErrorName(OnError e) noexcept;
int32_t onErrorVerdict(OnError e) noexcept;

enum class Direction { Ingress, Egress };

// A watch a plugin asked for, copied into host memory.
struct WatchSpec {
    std::string group, version, resource, kind, watchNamespace, labelSelector, fieldSelector;

    bool operator==(const WatchSpec&) const = default;
    bool operator<(const WatchSpec& o) const {
        return std::tie(group, version, resource, kind, watchNamespace, labelSelector, fieldSelector) <
               std::tie(o.group, o.version, o.resource, o.kind, o.watchNamespace, o.labelSelector, o.fieldSelector);
    }
    std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
    std::string describe() const;
};

// A snapshot's interest, copied out of plugin memory and validated at update time, so the
// dataplane computes deltas on data the host owns.
struct DirectionInterestSet {
    bool divertAll = false;
    bool localPods = false;
    uint32_t protocols = 0;
    std::vector<knp_cidr> local;
    std::vector<knp_cidr> remote;
    std::vector<knp_port_range> dstPorts;
    bool empty() const noexcept { return !divertAll && !localPods && local.empty() && remote.empty(); }
};
struct InterestSet {
    DirectionInterestSet ingress;
    DirectionInterestSet egress;
};

// What the host lends a plugin during update(): the pod index to iterate.
using PodIterator = std::function<int32_t(bool localOnly, int32_t (*fn)(void*, const knp_pod*), void* user)>;

struct InstanceOptions {
    std::string name;
    std::string configJson = "{}";
    OnError onError = OnError::Deny;
    std::string nodeName;
};

class PluginInstance {
public:
    // Calls init and get_watches. Errors are one line; a config error carries the JSON
    // pointer separately (`configPointer`) so the caller can name the pipeline.yaml line.
    struct InitError {
        Error error;
        std::string configPointer;
    };
    static std::variant<std::unique_ptr<PluginInstance>, InitError> create(const PluginLibrary& lib,
                                                                           InstanceOptions options);
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    const std::string& name() const noexcept { return options_.name; }
    const PluginLibrary& library() const noexcept { return lib_; }
    const knp_plugin_descriptor& descriptor() const noexcept { return *lib_.descriptor; }
    OnError onError() const noexcept { return options_.onError; }
    bool handles(Direction d) const noexcept {
        return (descriptor().capabilities & (d == Direction::Ingress ? KNP_CAP_INGRESS : KNP_CAP_EGRESS)) != 0;
    }
    const std::vector<WatchSpec>& watches() const noexcept { return watches_; }

    struct UpdateOutcome {
        void* snapshot = nullptr;  // nullptr: unchanged
        InterestSet interest;
    };
    // `podIterator` backs the host API's for_each_pod for the duration of the call.
    Result<UpdateOutcome> update(const std::vector<const knp_event*>& events, uint32_t flags,
                                 const PodIterator& podIterator);
    void release(void* snapshot) noexcept;

    // Data path. Returns 0 and fills `out`, or a negative errno (-EIO when the plugin threw).
    int32_t evaluate(Direction d, const void* snapshot, const knp_eval_args& args, knp_eval_result& out) const noexcept;

    // Host-side context behind the knp_host_api callbacks.
    struct HostContext;

private:
    PluginInstance(const PluginLibrary& lib, InstanceOptions options);

    const PluginLibrary& lib_;
    InstanceOptions options_;
    knp_plugin* plugin_ = nullptr;
    std::vector<WatchSpec> watches_;
    std::unique_ptr<HostContext> ctx_;
};

}  // namespace knp::host
