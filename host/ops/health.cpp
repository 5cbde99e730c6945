#include "ops/health.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace knp::host {

void HealthFlag::set(bool ok, std::string message) {
    std::lock_guard lock(mutex_);
    state_ = HealthResult{ok, std::move(message)};
}

HealthResult HealthFlag::get() const {
    std::lock_guard lock(mutex_);
    return state_;
}

bool HealthChecks::add(std::string name, Check check) {
    std::lock_guard lock(mutex_);
    for (const auto& [n, c] : checks_)
        if (n == name) return false;
    checks_.emplace_back(std::move(name), std::move(check));
    return true;
}

std::shared_ptr<HealthFlag> HealthChecks::addFlag(std::string name, std::string message) {
    auto flag = std::make_shared<HealthFlag>(std::move(message));
    if (!add(std::move(name), [flag] { return flag->get(); })) return nullptr;
    return flag;
}

void HealthChecks::remove(std::string_view name) {
    std::lock_guard lock(mutex_);
    std::erase_if(checks_, [&](const auto& c) { return c.first == name; });
}

HealthChecks::Report HealthChecks::run(std::string_view only, const std::vector<std::string>& exclude) const {
    std::lock_guard lock(mutex_);
    Report r;
    for (const auto& [name, check] : checks_) {
        if (!only.empty() && name != only) continue;
        if (std::find(exclude.begin(), exclude.end(), name) != exclude.end()) continue;
        HealthResult res;
        try {
            res = check();
        } catch (const std::exception& e) {
            res = {false, fmt::format("check threw: {}", e.what())};
        }
        r.ok = r.ok && res.ok;
        r.checks.emplace_back(name, std::move(res));
    }
    if (!only.empty() && r.checks.empty()) r.ok = false;
    return r;
}

std::string HealthChecks::format(const Report& report, bool verbose) const {
    if (report.ok && !verbose) return "ok";
    std::string out;
    for (const auto& [name, res] : report.checks) {
        if (res.ok) {
            out += fmt::format("[+]{} ok", name);
        } else {
            out += fmt::format("[-]{} failed", name);
        }
        if (!res.message.empty()) out += ": " + res.message;
        out.push_back('\n');
    }
    out += fmt::format("{} check {}", kind_, report.ok ? "passed" : "failed");
    return out;
}

}  // namespace knp::host
