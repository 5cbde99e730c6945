#include "faults.hpp"

#include <algorithm>

#include <boost/json/array.hpp>
#include <fmt/format.h>

namespace knp::lab {

namespace {

const char* signalName(StreamSignal s) {
    switch (s) {
        case StreamSignal::Cut:
            return "cut";
        case StreamSignal::Stall:
            return "stall";
        case StreamSignal::Close:
            return "close";
        case StreamSignal::Bookmark:
            return "bookmark";
    }
    return "?";
}

std::string_view bearer(std::string_view authorization) {
    constexpr std::string_view kPrefix = "Bearer ";
    if (authorization.size() <= kPrefix.size()) return {};
    if (!std::equal(kPrefix.begin(), kPrefix.end(), authorization.begin(),
                    [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
        return {};
    return authorization.substr(kPrefix.size());
}

}  // namespace

void Faults::addError(const ResourceType* rt, int code, int retryAfter, int count, std::vector<std::string> verbs) {
    errors_.push_back({rt, code, retryAfter, count, std::move(verbs)});
}

std::optional<ApiError> Faults::takeError(const ResourceType& rt, std::string_view verb) {
    for (auto it = errors_.begin(); it != errors_.end(); ++it) {
        if (it->rt && it->rt != &rt) continue;
        if (!it->verbs.empty() && std::find(it->verbs.begin(), it->verbs.end(), verb) == it->verbs.end()) continue;
        ApiError e;
        e.code = it->code;
        if (it->code == 429) {
            e.reason = "TooManyRequests";
            e.message = "Too many requests, please try again later.";
            e.retryAfterSeconds = std::max(it->retryAfter, 1);
        } else if (it->code == 500) {
            e.reason = "InternalError";
            e.message = "Internal error occurred: injected by the lab API server";
        } else if (it->code == 503) {
            e.reason = "ServiceUnavailable";
            e.message = "injected by the lab API server";
            if (it->retryAfter > 0) e.retryAfterSeconds = it->retryAfter;
        } else {
            e.reason = "InternalError";
            e.message = fmt::format("injected error {}", it->code);
        }
        if (--it->remaining <= 0) errors_.erase(it);
        return e;
    }
    return std::nullopt;
}

void Faults::armWatch(const ResourceType* rt, StreamSignal s, int count) {
    if (count > 0) watches_.push_back({rt, s, count});
}

std::optional<StreamSignal> Faults::takeWatchFault(const ResourceType& rt) {
    for (auto it = watches_.begin(); it != watches_.end(); ++it) {
        if (it->rt && it->rt != &rt) continue;
        StreamSignal s = it->signal;
        if (--it->remaining <= 0) watches_.erase(it);
        return s;
    }
    return std::nullopt;
}

void Faults::clear() {
    errors_.clear();
    watches_.clear();
    splitChunks = false;
    goneAsStatus = false;
}

json::object Faults::describe() const {
    json::array errors, watches;
    for (const auto& e : errors_) {
        json::array verbs;
        for (const auto& v : e.verbs) verbs.push_back(json::string(v));
        errors.push_back(json::object{{"resource", e.rt ? e.rt->groupResource() : "*"},
                                      {"code", e.code},
                                      {"retryAfter", e.retryAfter},
                                      {"remaining", e.remaining},
                                      {"verbs", std::move(verbs)}});
    }
    for (const auto& w : watches_)
        watches.push_back(json::object{{"resource", w.rt ? w.rt->groupResource() : "*"},
                                       {"type", signalName(w.signal)},
                                       {"remaining", w.remaining}});
    return json::object{{"errors", std::move(errors)},
                        {"watches", std::move(watches)},
                        {"splitChunks", splitChunks},
                        {"goneAs", goneAsStatus ? "status" : "event"}};
}

bool Auth::allowApi(std::string_view authorization) const { return !rejected_ && bearer(authorization) == current_; }

bool Auth::allowAdmin(std::string_view authorization) const {
    std::string_view t = bearer(authorization);
    return !t.empty() && (t == current_ || t == initial_);
}

bool Auth::allowPublic(std::string_view authorization) const {
    return authorization.empty() || allowApi(authorization);
}

void Auth::setToken(std::string token) {
    current_ = std::move(token);
    rejected_ = false;
}

}  // namespace knp::lab
