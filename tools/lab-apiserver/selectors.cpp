#include "selectors.hpp"

#include <algorithm>
#include <cctype>

#include <boost/json/array.hpp>

#include "objects.hpp"
#include "resources.hpp"

namespace knp::lab {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// Splits on commas outside parentheses.
std::vector<std::string_view> splitTop(std::string_view s) {
    std::vector<std::string_view> out;
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '(') ++depth;
        if (s[i] == ')') --depth;
        if (s[i] == ',' && depth == 0) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    }
    out.push_back(s.substr(start));
    return out;
}

bool validKey(std::string_view k) {
    if (k.empty() || k.size() > 317) return false;
    return std::all_of(k.begin(), k.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
    });
}

bool validValue(std::string_view v) {
    return v.size() <= 63 && std::all_of(v.begin(), v.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
           });
}

const json::object* labelsOf(const json::object& obj) {
    const json::object* m = metadataOf(obj);
    return m ? objectAt(*m, "labels") : nullptr;
}

std::string fieldString(const json::value* v) {
    if (!v) return "";
    if (v->is_string()) return std::string(v->get_string());
    if (v->is_bool()) return v->get_bool() ? "true" : "false";
    if (v->is_int64()) return std::to_string(v->get_int64());
    return "";
}

}  // namespace

host::Result<LabelSelector> LabelSelector::parse(std::string_view text) {
    LabelSelector sel;
    if (trim(text).empty()) return sel;
    for (std::string_view raw : splitTop(text)) {
        std::string_view r = trim(raw);
        if (r.empty()) return host::makeError("found '', expected: !, identifier, or 'end of string'");
        Requirement req;
        if (r[0] == '!') {
            req.key = std::string(trim(r.substr(1)));
            req.op = Op::NotExists;
        } else if (auto p = r.find("!="); p != std::string_view::npos) {
            req.key = std::string(trim(r.substr(0, p)));
            req.op = Op::NotEquals;
            req.values.emplace_back(trim(r.substr(p + 2)));
        } else if (auto q = r.find("=="); q != std::string_view::npos) {
            req.key = std::string(trim(r.substr(0, q)));
            req.op = Op::Equals;
            req.values.emplace_back(trim(r.substr(q + 2)));
        } else if (auto e = r.find('='); e != std::string_view::npos) {
            req.key = std::string(trim(r.substr(0, e)));
            req.op = Op::Equals;
            req.values.emplace_back(trim(r.substr(e + 1)));
        } else if (auto paren = r.find('('); paren != std::string_view::npos) {
            if (r.back() != ')') return host::makeError("unterminated set in \"{}\"", r);
            std::string_view head = trim(r.substr(0, paren));
            auto sp = head.find_last_of(" \t");
            if (sp == std::string_view::npos) return host::makeError("expected in or notin in \"{}\"", r);
            std::string_view op = head.substr(sp + 1);
            req.key = std::string(trim(head.substr(0, sp)));
            if (op == "in")
                req.op = Op::In;
            else if (op == "notin")
                req.op = Op::NotIn;
            else
                return host::makeError("unknown operator \"{}\" in \"{}\"", op, r);
            std::string_view inner = r.substr(paren + 1, r.size() - paren - 2);
            std::size_t start = 0;
            while (true) {
                auto comma = inner.find(',', start);
                std::string_view v = trim(inner.substr(start, comma == std::string_view::npos ? comma : comma - start));
                if (!v.empty()) req.values.emplace_back(v);
                if (comma == std::string_view::npos) break;
                start = comma + 1;
            }
            if (req.values.empty()) return host::makeError("for 'in', 'notin' operators, values set can't be empty");
        } else {
            req.key = std::string(r);
            req.op = Op::Exists;
        }
        if (!validKey(req.key)) return host::makeError("invalid label key \"{}\"", req.key);
        for (const auto& v : req.values)
            if (!validValue(v)) return host::makeError("invalid label value: \"{}\"", v);
        sel.reqs_.push_back(std::move(req));
    }
    return sel;
}

bool LabelSelector::matches(const json::object& obj) const {
    const json::object* labels = labelsOf(obj);
    for (const auto& r : reqs_) {
        const json::value* v = nullptr;
        if (labels) {
            auto it = labels->find(r.key);
            if (it != labels->end()) v = &it->value();
        }
        std::string val = v && v->is_string() ? std::string(v->get_string()) : std::string();
        bool in = v && std::find(r.values.begin(), r.values.end(), val) != r.values.end();
        switch (r.op) {
            case Op::Equals:
            case Op::In:
                if (!in) return false;
                break;
            case Op::NotEquals:
            case Op::NotIn:
                if (in) return false;
                break;
            case Op::Exists:
                if (!v) return false;
                break;
            case Op::NotExists:
                if (v) return false;
                break;
        }
    }
    return true;
}

host::Result<FieldSelector> FieldSelector::parse(std::string_view text, const ResourceType& rt) {
    FieldSelector sel;
    if (trim(text).empty()) return sel;
    for (std::string_view raw : splitTop(text)) {
        std::string_view r = trim(raw);
        Requirement req;
        std::size_t opLen = 0;
        auto p = r.find("!=");
        if (p != std::string_view::npos) {
            req.equals = false;
            opLen = 2;
        } else if ((p = r.find("==")) != std::string_view::npos) {
            req.equals = true;
            opLen = 2;
        } else if ((p = r.find('=')) != std::string_view::npos) {
            req.equals = true;
            opLen = 1;
        } else {
            return host::makeError("invalid selector: '{}'; can't understand '{}'", text, r);
        }
        req.field = std::string(trim(r.substr(0, p)));
        req.value = std::string(trim(r.substr(p + opLen)));
        bool known = req.field == "metadata.name" || (req.field == "metadata.namespace" && rt.namespaced) ||
                     std::find(rt.fieldLabels.begin(), rt.fieldLabels.end(), req.field) != rt.fieldLabels.end();
        if (!known) return host::makeError("field label not supported: {}", req.field);
        sel.reqs_.push_back(std::move(req));
    }
    return sel;
}

bool FieldSelector::matches(const json::object& obj) const {
    for (const auto& r : reqs_) {
        std::string actual = fieldString(valueAtPath(obj, r.field));
        if ((actual == r.value) != r.equals) return false;
    }
    return true;
}

std::string formatLabelSelector(const json::object* selector) {
    if (!selector) return "<none>";
    std::string out;
    auto add = [&](const std::string& s) {
        if (!out.empty()) out += ',';
        out += s;
    };
    if (const json::object* ml = objectAt(*selector, "matchLabels"))
        for (const auto& kv : *ml)
            add(std::string(kv.key()) + "=" + (kv.value().is_string() ? std::string(kv.value().get_string()) : ""));
    auto it = selector->find("matchExpressions");
    if (it != selector->end() && it->value().is_array()) {
        for (const auto& e : it->value().get_array()) {
            if (!e.is_object()) continue;
            const auto& ex = e.get_object();
            std::string key(stringAt(ex, "key"));
            std::string op(stringAt(ex, "operator"));
            std::string vals;
            auto vit = ex.find("values");
            if (vit != ex.end() && vit->value().is_array())
                for (const auto& v : vit->value().get_array())
                    if (v.is_string()) vals += (vals.empty() ? "" : ",") + std::string(v.get_string());
            if (op == "In")
                add(key + " in (" + vals + ")");
            else if (op == "NotIn")
                add(key + " notin (" + vals + ")");
            else if (op == "Exists")
                add(key);
            else if (op == "DoesNotExist")
                add("!" + key);
        }
    }
    return out.empty() ? "<none>" : out;
}

}  // namespace knp::lab
