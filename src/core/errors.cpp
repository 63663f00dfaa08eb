#include "corio/errors.hpp"

#include <netdb.h>

#include <stdexcept>
#include <string>

namespace corio {

ExceptionGroup::ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
    : message_(std::move(message)), exceptions_(std::move(exceptions)) {
    if (exceptions_.empty()) throw std::invalid_argument("ExceptionGroup: no exceptions to group");
    for (const auto& e : exceptions_)
        if (!e) throw std::invalid_argument("ExceptionGroup: a null exception_ptr among the exceptions");
    what_ = message_ + " (" + std::to_string(exceptions_.size()) + " sub-exception" +
            (exceptions_.size() == 1 ? "" : "s") + ")";
}

namespace {
class GaiCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int code) const override { return ::gai_strerror(code); }
};
}  // namespace

const std::error_category& gai_category() noexcept {
    static const GaiCategory category;
    return category;
}

namespace detail {

bool is_cancellation(const std::exception_ptr& e) noexcept {
    if (!e) return false;
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError&) {
        return true;
    } catch (...) {
        return false;
    }
}

}  // namespace detail

namespace {

// A group's members too, as Python prints a group's tree (the count alone, "1 sub-exception",
// hides what went wrong); a nested group braced. Bounded as Python's traceback printer bounds
// it (max_group_width 15, max_group_depth 10): a TaskGroup of ten thousand failed connections
// makes one readable line, not megabytes.
constexpr std::size_t kMaxGroupWidth = 15;
constexpr int kMaxGroupDepth = 10;

void describe_group(const ExceptionGroup& g, int depth, std::string& out) {
    out += g.what();
    out += ':';
    const auto& members = g.exceptions();
    for (std::size_t i = 0; i < members.size() && i < kMaxGroupWidth; ++i) {
        out += i ? "; [" : " [";
        out += std::to_string(i + 1);
        out += "] ";
        bool nested = false;
        try {
            std::rethrow_exception(members[i]);
        } catch (const ExceptionGroup& inner) {
            nested = true;
            if (depth + 1 >= kMaxGroupDepth) {
                out += "{...}";
            } else {
                out += '{';
                describe_group(inner, depth + 1, out);
                out += '}';
            }
        } catch (...) {
        }
        if (!nested) out += describe(members[i]);
    }
    if (members.size() > kMaxGroupWidth) out += "; ... and " + std::to_string(members.size() - kMaxGroupWidth) + " more";
}

}  // namespace

std::string describe(const std::exception_ptr& e) {
    if (!e) return "no exception";
    try {
        std::rethrow_exception(e);
    } catch (const CancelledError& c) {
        return std::string("CancelledError(") + c.what() + ")";
    } catch (const ExceptionGroup& g) {
        std::string out;
        describe_group(g, 0, out);
        return out;
    } catch (const std::exception& x) {
        return x.what();
    } catch (const GeneratorExit&) {
        return "GeneratorExit";
    } catch (const KeyboardInterrupt& k) {
        return std::string("KeyboardInterrupt(") + k.what() + ")";
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace corio
