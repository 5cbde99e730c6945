// Label and field selectors in the query-string syntax of the API (`labelSelector`,
// `fieldSelector`), and the LabelSelector objects of specs printed for tables.
// THREAD: immutable after parsing.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "common/result.hpp"

namespace knp::lab {

struct ResourceType;

class LabelSelector {
public:
    // "a=b,c!=d,e in (x,y),f notin (z),g,!h"; "" selects everything.
    static host::Result<LabelSelector> parse(std::string_view text);
    // `obj` is a whole object; its metadata.labels are matched.
    bool matches(const boost::json::object& obj) const;
    bool empty() const { return reqs_.empty(); }

private:
    enum class Op { Equals, NotEquals, In, NotIn, Exists, NotExists };
    struct Requirement {
        std::string key;
        Op op;
        std::vector<std::string> values;
    };
    std::vector<Requirement> reqs_;
};

class FieldSelector {
public:
    // "metadata.name=x,spec.nodeName!=y"; the fields allowed depend on the kind, as in the
    // real API server ("field label not supported" otherwise).
    static host::Result<FieldSelector> parse(std::string_view text, const ResourceType& rt);
    bool matches(const boost::json::object& obj) const;
    bool empty() const { return reqs_.empty(); }

private:
    struct Requirement {
        std::string field;
        bool equals;
        std::string value;
    };
    std::vector<Requirement> reqs_;
};

// A metav1.LabelSelector as `kubectl get` prints it ("app=web,tier in (a,b)", "<none>").
std::string formatLabelSelector(const boost::json::object* selector);

}  // namespace knp::lab
