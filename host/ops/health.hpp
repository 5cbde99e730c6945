// Named health checks behind /livez and /readyz, reported the way kube-apiserver does:
//
//   [+]ping ok
//   [-]plugin-snapshots failed: instance "np" has no snapshot yet
//   readyz check failed
//
// Components register checks of their own: a function evaluated at request time (it must be
// quick and must not block), or a flag the owner sets when its state changes (e.g. the watch
// client's "watches-synced").
//
// THREAD: thread-safe. Checks run on the thread that asks (the ops thread), one run at a time.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace knp::host {

struct HealthResult {
    bool ok = false;
    std::string message;  // why not (or a detail when ok); one line
};

// A check whose state its owner pushes. THREAD: thread-safe.
class HealthFlag {
public:
    explicit HealthFlag(std::string message) : state_{false, std::move(message)} {}
    void set(bool ok, std::string message = {});
    HealthResult get() const;

private:
    mutable std::mutex mutex_;
    HealthResult state_;
};

class HealthChecks {
public:
    using Check = std::function<HealthResult()>;

    explicit HealthChecks(std::string kind) : kind_(std::move(kind)) {}

    // Registers `name` (a DNS-label-like word); returns false when the name is taken.
    bool add(std::string name, Check check);
    // A pushed check, initially failing with `message` (e.g. "not synced yet").
    std::shared_ptr<HealthFlag> addFlag(std::string name, std::string message);
    void remove(std::string_view name);

    struct Report {
        bool ok = true;
        std::vector<std::pair<std::string, HealthResult>> checks;  // registration order
    };
    // Runs every check (or the one named `only`; none matches: not ok), skipping `exclude`d ones.
    Report run(std::string_view only = {}, const std::vector<std::string>& exclude = {}) const;

    // The HTTP body: "ok" when everything passed and not `verbose`; otherwise one [+]/[-] line
    // per check and a last line "<kind> check passed|failed".
    std::string format(const Report& report, bool verbose) const;
    const std::string& kind() const noexcept { return kind_; }

private:
    std::string kind_;
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, Check>> checks_;
};

}  // namespace knp::host
