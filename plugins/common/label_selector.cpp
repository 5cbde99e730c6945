#include "common/label_selector.hpp"

#include <knp/types.hpp>

#include <algorithm>
#include <tuple>

#include "common/json_util.hpp"

namespace knp::policy {

namespace json = boost::json;

namespace {

bool alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], 1..63 characters.
bool validName(std::string_view s) noexcept {
    if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// A DNS-1123 subdomain: lower-case labels of [a-z0-9-], alphanumeric at both ends, joined by
// dots, at most 253 characters.
bool validSubdomain(std::string_view s) noexcept {
    if (s.empty() || s.size() > 253) return false;
    size_t start = 0;
    while (start <= s.size()) {
        size_t dot = s.find('.', start);
        std::string_view part = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        auto lowerAlnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
        if (part.empty() || !lowerAlnum(part.front()) || !lowerAlnum(part.back())) return false;
        if (!std::all_of(part.begin(), part.end(), [&](char c) { return lowerAlnum(c) || c == '-'; })) return false;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return true;
}

std::string_view opName(LabelSelector::Op op) noexcept {
    switch (op) {
        case LabelSelector::Op::In:
            return "In";
        case LabelSelector::Op::NotIn:
            return "NotIn";
        case LabelSelector::Op::Exists:
            return "Exists";
        case LabelSelector::Op::DoesNotExist:
            return "DoesNotExist";
    }
    return "?";
}

std::string checkedKey(std::string_view text, const std::string& ptr) {
    std::string key(text);
    if (key.size() > 317 || !validLabelKey(key))
        fail(ptr, "\"" + key +
                      "\" is not a valid label key (an optional DNS-subdomain prefix and '/', then 1-63 "
                      "alphanumerics, '-', '_' or '.', alphanumeric at both ends)");
    return key;
}

std::string checkedValue(const json::value& v, const std::string& ptr) {
    std::string value(asString(v, ptr, 63));
    if (!validLabelValue(value))
        fail(ptr, "\"" + value +
                      "\" is not a valid label value (0-63 alphanumerics, '-', '_' or '.', alphanumeric at "
                      "both ends)");
    return value;
}

}  // namespace

bool validLabelKey(std::string_view key) noexcept {
    size_t slash = key.find('/');
    if (slash == std::string_view::npos) return validName(key);
    return validSubdomain(key.substr(0, slash)) && validName(key.substr(slash + 1));
}

bool validLabelValue(std::string_view value) noexcept { return value.empty() || validName(value); }

LabelSelector LabelSelector::parse(const json::value& v, const std::string& ptr) {
    const json::object& o = asObject(v, ptr);
    LabelSelector s;
    if (const json::value* ml = member(o, "matchLabels")) {
        std::string mp = child(ptr, "matchLabels");
        const json::object& m = asObject(*ml, mp);
        if (m.size() > kMaxSelectorRequirements)
            fail(mp, "has " + std::to_string(m.size()) + " labels, the limit is " +
                         std::to_string(kMaxSelectorRequirements));
        for (const auto& kv : m) {
            std::string kp = child(mp, kv.key());
            std::string key = checkedKey(kv.key(), kp);
            s.reqs_.push_back({std::move(key), Op::In, {checkedValue(kv.value(), kp)}});
        }
    }
    if (const json::value* me = member(o, "matchExpressions")) {
        std::string ep = child(ptr, "matchExpressions");
        const json::array& a = asArray(*me, ep, kMaxSelectorRequirements);
        for (size_t i = 0; i < a.size(); ++i) {
            std::string p = child(ep, i);
            const json::object& e = asObject(a[i], p);
            const json::value* key = member(e, "key");
            if (key == nullptr) fail(child(p, "key"), "required");
            Requirement r;
            r.key = checkedKey(asString(*key, child(p, "key"), 317), child(p, "key"));
            const json::value* op = member(e, "operator");
            if (op == nullptr) fail(child(p, "operator"), "required");
            std::string_view opText = asString(*op, child(p, "operator"), 64);
            if (opText == "In") {
                r.op = Op::In;
            } else if (opText == "NotIn") {
                r.op = Op::NotIn;
            } else if (opText == "Exists") {
                r.op = Op::Exists;
            } else if (opText == "DoesNotExist") {
                r.op = Op::DoesNotExist;
            } else {
                fail(child(p, "operator"),
                     "\"" + std::string(opText) + "\" is not a valid operator (In, NotIn, Exists, DoesNotExist)");
            }
            std::string vp = child(p, "values");
            if (const json::value* vs = member(e, "values")) {
                const json::array& va = asArray(*vs, vp, kMaxSelectorValues);
                for (size_t j = 0; j < va.size(); ++j) r.values.push_back(checkedValue(va[j], child(vp, j)));
            }
            bool wantsValues = r.op == Op::In || r.op == Op::NotIn;
            if (wantsValues && r.values.empty()) fail(vp, "must be non-empty when operator is " + std::string(opText));
            if (!wantsValues && !r.values.empty()) fail(vp, "must be empty when operator is " + std::string(opText));
            std::sort(r.values.begin(), r.values.end());
            r.values.erase(std::unique(r.values.begin(), r.values.end()), r.values.end());
            s.reqs_.push_back(std::move(r));
        }
    }
    if (s.reqs_.size() > kMaxSelectorRequirements)
        fail(ptr, "has " + std::to_string(s.reqs_.size()) + " requirements, the limit is " +
                      std::to_string(kMaxSelectorRequirements));
    auto order = [](const Requirement& a, const Requirement& b) {
        return std::tie(a.key, a.op, a.values) < std::tie(b.key, b.op, b.values);
    };
    std::sort(s.reqs_.begin(), s.reqs_.end(), order);
    s.reqs_.erase(std::unique(s.reqs_.begin(), s.reqs_.end(),
                              [](const Requirement& a, const Requirement& b) {
                                  return a.key == b.key && a.op == b.op && a.values == b.values;
                              }),
                  s.reqs_.end());
    for (const Requirement& r : s.reqs_) {
        if (!s.canonical_.empty()) s.canonical_ += ';';
        s.canonical_ += r.key;
        s.canonical_ += ' ';
        s.canonical_ += opName(r.op);
        if (!r.values.empty()) {
            s.canonical_ += " (";
            for (size_t i = 0; i < r.values.size(); ++i) {
                if (i != 0) s.canonical_ += ',';
                s.canonical_ += r.values[i];
            }
            s.canonical_ += ')';
        }
    }
    return s;
}

bool LabelSelector::matches(std::span<const knp_label> labels) const noexcept {
    for (const Requirement& r : reqs_) {
        std::optional<std::string_view> v = findLabel(labels, r.key);
        bool in = false;
        if (v && (r.op == Op::In || r.op == Op::NotIn)) {
            in = r.values.size() == 1 ? r.values.front() == *v
                                      : std::binary_search(r.values.begin(), r.values.end(), *v, std::less<>());
        }
        switch (r.op) {
            case Op::In:
                if (!in) return false;
                break;
            case Op::NotIn:  // an object without the key matches NotIn (§1.3)
                if (in) return false;
                break;
            case Op::Exists:
                if (!v) return false;
                break;
            case Op::DoesNotExist:
                if (v) return false;
                break;
        }
    }
    return true;
}

}  // namespace knp::policy
