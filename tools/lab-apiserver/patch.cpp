#include "patch.hpp"

#include <algorithm>
#include <string_view>

#include <boost/json/object.hpp>

namespace knp::lab {

namespace json = boost::json;

void mergePatch(json::value& target, const json::value& patch) {
    if (!patch.is_object()) {
        target = patch;
        return;
    }
    if (!target.is_object()) target = json::object{};
    json::object& t = target.get_object();
    for (const auto& kv : patch.get_object()) {
        if (kv.value().is_null())
            t.erase(kv.key());
        else
            mergePatch(t[kv.key()], kv.value());
    }
}

namespace {

// --- RFC 6901 pointers for JSON patch ---

std::string unescapeToken(std::string_view t) {
    std::string out;
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '~' && i + 1 < t.size()) {
            out += t[i + 1] == '1' ? '/' : '~';
            ++i;
        } else {
            out += t[i];
        }
    }
    return out;
}

std::vector<std::string> splitPointer(std::string_view p) {
    std::vector<std::string> out;
    if (p.empty()) return out;
    p.remove_prefix(1);  // leading '/'
    while (true) {
        auto slash = p.find('/');
        out.push_back(unescapeToken(p.substr(0, slash)));
        if (slash == std::string_view::npos) break;
        p.remove_prefix(slash + 1);
    }
    return out;
}

bool parseIndex(const std::string& tok, std::size_t size, bool allowEnd, std::size_t& out) {
    if (allowEnd && tok == "-") {
        out = size;
        return true;
    }
    if (tok.empty() || !std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    out = std::stoul(tok);
    return allowEnd ? out <= size : out < size;
}

// The parent container of the pointer's last token.
json::value* resolveParent(json::value& root, const std::vector<std::string>& toks) {
    json::value* cur = &root;
    for (std::size_t i = 0; i + 1 < toks.size(); ++i) {
        if (cur->is_object()) {
            auto it = cur->get_object().find(toks[i]);
            if (it == cur->get_object().end()) return nullptr;
            cur = &it->value();
        } else if (cur->is_array()) {
            std::size_t idx;
            if (!parseIndex(toks[i], cur->get_array().size(), false, idx)) return nullptr;
            cur = &cur->get_array()[idx];
        } else {
            return nullptr;
        }
    }
    return cur;
}

host::Result<json::value> getAt(json::value& root, const std::vector<std::string>& toks) {
    if (toks.empty()) return root;
    json::value* parent = resolveParent(root, toks);
    if (!parent) return host::makeError("path not found");
    if (parent->is_object()) {
        auto it = parent->get_object().find(toks.back());
        if (it == parent->get_object().end()) return host::makeError("path not found");
        return it->value();
    }
    if (parent->is_array()) {
        std::size_t idx;
        if (!parseIndex(toks.back(), parent->get_array().size(), false, idx)) return host::makeError("bad index");
        return parent->get_array()[idx];
    }
    return host::makeError("path not found");
}

host::Status removeAt(json::value& root, const std::vector<std::string>& toks) {
    json::value* parent = toks.empty() ? nullptr : resolveParent(root, toks);
    if (!parent) return host::makeError("path not found");
    if (parent->is_object()) {
        if (parent->get_object().erase(toks.back()) == 0) return host::makeError("path not found");
        return host::okStatus();
    }
    if (parent->is_array()) {
        std::size_t idx;
        if (!parseIndex(toks.back(), parent->get_array().size(), false, idx)) return host::makeError("bad index");
        parent->get_array().erase(parent->get_array().begin() + static_cast<std::ptrdiff_t>(idx));
        return host::okStatus();
    }
    return host::makeError("path not found");
}

host::Status addAt(json::value& root, const std::vector<std::string>& toks, json::value v, bool replace) {
    if (toks.empty()) {
        root = std::move(v);
        return host::okStatus();
    }
    json::value* parent = resolveParent(root, toks);
    if (!parent) return host::makeError("path not found");
    if (parent->is_object()) {
        auto& o = parent->get_object();
        if (replace && o.find(toks.back()) == o.end()) return host::makeError("path not found");
        o[toks.back()] = std::move(v);
        return host::okStatus();
    }
    if (parent->is_array()) {
        auto& a = parent->get_array();
        std::size_t idx;
        if (!parseIndex(toks.back(), a.size(), !replace, idx)) return host::makeError("bad index");
        if (replace)
            a[idx] = std::move(v);
        else
            a.insert(a.begin() + static_cast<std::ptrdiff_t>(idx), std::move(v));
        return host::okStatus();
    }
    return host::makeError("path not found");
}

}  // namespace

host::Status jsonPatch(json::value& target, const json::array& ops) {
    for (const auto& opv : ops) {
        if (!opv.is_object()) return host::makeError("a JSON patch operation must be an object");
        const auto& op = opv.get_object();
        auto str = [&](std::string_view k) -> std::string {
            auto it = op.find(k);
            return it != op.end() && it->value().is_string() ? std::string(it->value().get_string()) : std::string();
        };
        std::string name = str("op"), path = str("path");
        auto toks = splitPointer(path);
        auto valueIt = op.find("value");
        host::Status st = host::okStatus();
        if (name == "add" || name == "replace") {
            if (valueIt == op.end()) return host::makeError("{} operation has no value", name);
            st = addAt(target, toks, valueIt->value(), name == "replace");
        } else if (name == "remove") {
            st = removeAt(target, toks);
        } else if (name == "move" || name == "copy") {
            auto from = splitPointer(str("from"));
            auto v = getAt(target, from);
            if (!v) return host::makeError("{} from \"{}\": {}", name, str("from"), v.error().message);
            if (name == "move") {
                if (auto r = removeAt(target, from); !r) return r;
            }
            st = addAt(target, toks, std::move(v.value()), false);
        } else if (name == "test") {
            auto v = getAt(target, toks);
            if (!v || valueIt == op.end() || v.value() != valueIt->value())
                return host::makeError("testing value {} failed", path);
        } else {
            return host::makeError("unexpected kind of JSON patch operation: \"{}\"", name);
        }
        if (!st) return host::makeError("{} {}: {}", name, path, st.error().message);
    }
    return host::okStatus();
}

namespace {

// Merge keys of the built-in schemas' lists of objects (patchMergeKey / listMapKeys).
std::string_view mergeKeyFor(std::string_view field) {
    static constexpr std::pair<std::string_view, std::string_view> kKeys[] = {
        {"containers", "name"},
        {"initContainers", "name"},
        {"ephemeralContainers", "name"},
        {"volumes", "name"},
        {"env", "name"},
        {"volumeMounts", "mountPath"},
        {"ports", "containerPort"},
        {"conditions", "type"},
        {"addresses", "type"},
        {"taints", "key"},
        {"imagePullSecrets", "name"},
        {"hostAliases", "ip"},
        {"ownerReferences", "uid"},
        {"resourceClaims", "name"},
    };
    for (const auto& [f, k] : kKeys)
        if (f == field) return k;
    return {};
}

bool isDirective(std::string_view key) {
    return key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") ||
           key.starts_with("$deleteFromPrimitiveList/");
}

void smpValue(json::value& target, const json::value& patch, bool keyedLists, std::string_view field, bool apply);

void smpList(json::value& target, const json::array& patch, bool keyedLists, std::string_view field, bool apply) {
    std::string_view key = keyedLists ? mergeKeyFor(field) : std::string_view{};
    bool objects =
        !patch.empty() && std::all_of(patch.begin(), patch.end(), [](const json::value& v) { return v.is_object(); });
    // A `$patch: replace` element replaces the whole list with the other elements.
    for (const auto& e : patch)
        if (e.is_object() && e.get_object().contains("$patch") && e.get_object().at("$patch") == "replace") {
            json::array out;
            for (const auto& x : patch)
                if (!(x.is_object() && x.get_object().contains("$patch"))) out.push_back(x);
            target = std::move(out);
            return;
        }
    if (field == "finalizers" && !apply) {  // patchStrategy merge on a list of strings: a set union
        if (!target.is_array()) target = json::array{};
        for (const auto& e : patch)
            if (std::find(target.get_array().begin(), target.get_array().end(), e) == target.get_array().end())
                target.get_array().push_back(e);
        return;
    }
    if (key.empty() || !objects) {
        target = patch;
        return;
    }
    if (!target.is_array()) target = json::array{};
    json::array& t = target.get_array();
    for (const auto& e : patch) {
        const json::object& pe = e.get_object();
        auto kit = pe.find(key);
        auto match = t.end();
        if (kit != pe.end())
            match = std::find_if(t.begin(), t.end(), [&](const json::value& x) {
                return x.is_object() && x.get_object().contains(key) && x.get_object().at(key) == kit->value();
            });
        bool del = pe.contains("$patch") && pe.at("$patch") == "delete";
        if (del) {
            if (match != t.end()) t.erase(match);
            continue;
        }
        if (match == t.end()) {
            json::value fresh = json::object{};
            smpValue(fresh, e, keyedLists, field, apply);
            t.push_back(std::move(fresh));
        } else {
            smpValue(*match, e, keyedLists, field, apply);
        }
    }
}

void smpValue(json::value& target, const json::value& patch, bool keyedLists, std::string_view field, bool apply) {
    if (patch.is_array()) {
        smpList(target, patch.get_array(), keyedLists, field, apply);
        return;
    }
    if (!patch.is_object()) {
        target = patch;
        return;
    }
    const json::object& p = patch.get_object();
    if (auto it = p.find("$patch"); it != p.end()) {
        if (it->value() == "delete") {
            target = nullptr;  // the caller drops a null member
            return;
        }
        if (it->value() == "replace") {
            json::object out;
            for (const auto& kv : p)
                if (!isDirective(kv.key())) out[kv.key()] = kv.value();
            target = std::move(out);
            return;
        }
    }
    if (!target.is_object()) target = json::object{};
    json::object& t = target.get_object();
    for (const auto& kv : p) {
        std::string_view k = kv.key();
        if (k.starts_with("$deleteFromPrimitiveList/")) {
            auto it = t.find(k.substr(25));
            if (it != t.end() && it->value().is_array() && kv.value().is_array()) {
                auto& arr = it->value().get_array();
                for (const auto& v : kv.value().get_array())
                    arr.erase(std::remove(arr.begin(), arr.end(), v), arr.end());
            }
            continue;
        }
        if (isDirective(k)) continue;
        if (kv.value().is_null()) {
            t.erase(k);
            continue;
        }
        smpValue(t[k], kv.value(), keyedLists, k, apply);
        if (t[k].is_null() && !kv.value().is_null()) t.erase(k);
    }
    if (auto it = p.find("$retainKeys"); it != p.end() && it->value().is_array()) {
        const auto& keep = it->value().get_array();
        for (auto m = t.begin(); m != t.end();) {
            if (std::find(keep.begin(), keep.end(), json::value(m->key())) == keep.end())
                m = t.erase(m);
            else
                ++m;
        }
    }
}

}  // namespace

void strategicMerge(json::value& target, const json::value& patch, bool keyedLists) {
    smpValue(target, patch, keyedLists, "", false);
}

void applyMerge(json::value& target, const json::value& applied, bool keyedLists) {
    smpValue(target, applied, keyedLists, "", true);
}

}  // namespace knp::lab
