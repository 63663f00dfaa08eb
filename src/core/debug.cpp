#include "corio/debug.hpp"

#include <cxxabi.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <iostream>
#include <sstream>
#include <algorithm>
#include <map>
#include <set>
#include <locale>
#include <string_view>
#include <typeinfo>

#include "corio/task.hpp"

namespace corio {

namespace detail {

TaskInfo describe_task(const TaskBase& t) {
    TaskInfo info;
    info.id = t.id();
    info.name = t.name();
    if (t.done()) {
        // Its loop may be gone (format_call_graph(task) needs none): a finished task says so.
        info.state = t.cancelled() ? "cancelled" : "done";
    } else {
        EventLoop* loop = t.loop();
        info.state = (loop && loop->current_task() == &t) ? "running" : "pending";
    }
    info.created_file = t.created_at().file_name();
    info.created_line = t.created_at().line();
    info.cancelling = t.cancelling();
    if (const TaskStats* st = t.stats()) {
        info.age_s = std::chrono::duration<double>(Clock::now() - st->created).count();
        info.busy_s = std::chrono::duration<double>(st->busy).count();
        info.steps = st->steps;
    }
    for (const PromiseBase* p = t.root_promise(); p; p = p->awaiting)
        info.frames.push_back({p->location.function_name(), p->location.file_name(), p->location.line()});
    if (const WaitNode* w = t.waiting_on()) {
        const char* raw = typeid(*w).name();
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(raw, nullptr, nullptr, &status), &std::free);
        info.awaiting = (status == 0 && readable) ? readable.get() : raw;
        std::vector<const FutureBase*> awaited;
        w->collect_awaited(awaited);
        for (const FutureBase* f : awaited)
            if (auto* task = dynamic_cast<const TaskBase*>(f)) info.awaits.push_back(task->id());
    }
    return info;
}

namespace {

// Seconds with three decimals, always with a point: printf's %f follows setlocale(LC_NUMERIC),
// and a program that sets a decimal-comma locale would get "0,008" in reports and tables.
std::string fixed3(double s) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, s, std::chars_format::fixed, 3);
    if (ec != std::errc()) return "?";
    return std::string(buf, end);
}

}  // namespace

void report_slow_step(const TaskBase& t, std::chrono::nanoseconds took) noexcept {
    EventLoop* loop = t.loop();
    if (!loop) return;
    try {
        const std::string secs = fixed3(std::chrono::duration<double>(took).count());
        ExceptionContext c;
        c.message = "Executing <Task " + t.name() + "> took " + secs +
                    " seconds: something blocked the event loop (use corio::to_thread for blocking calls)";
        c.task_name = t.name();
        c.location = t.creation_site();
        c.call_graph = format_call_graph(t);
        loop->call_exception_handler(c);
    } catch (...) {
    }
}

void report_slow_callback(EventLoop& loop, std::chrono::nanoseconds took, const std::type_info* what) noexcept {
    try {
        const std::string secs = fixed3(std::chrono::duration<double>(took).count());
        std::string handle = "<Handle";
        if (what) {
            int status = 0;
            std::unique_ptr<char, void (*)(void*)> readable(abi::__cxa_demangle(what->name(), nullptr, nullptr, &status),
                                                            &std::free);
            handle += ' ';
            handle += (status == 0 && readable) ? readable.get() : what->name();
        }
        handle += '>';
        ExceptionContext c;
        c.message = "Executing " + handle + " took " + secs +
                    " seconds: a callback blocked the event loop (use corio::to_thread for blocking calls)";
        loop.call_exception_handler(c);
    } catch (...) {
    }
}

}  // namespace detail

std::string format_call_graph(const detail::TaskBase& task) {
    TaskInfo info = detail::describe_task(task);
    std::ostringstream out;
    out.imbue(std::locale::classic());
    out << "  * Task " << info.name << " (" << info.state;
    if (!info.created_file.empty()) out << ", created at " << info.created_file << ":" << info.created_line;
    out << ")";
    for (const auto& f : info.frames) out << "\n    | " << f.function << "  " << f.file << ":" << f.line;
    if (!info.awaiting.empty()) out << "\n    | awaiting " << info.awaiting;
    return out.str();
}

std::vector<TaskInfo> capture_call_graph() {
    std::vector<TaskInfo> out;
    get_running_loop().tasks().for_each([&](detail::TaskBase& t) { out.push_back(detail::describe_task(t)); });
    return out;
}

void print_call_graph(std::ostream& out) {
    get_running_loop().tasks().for_each([&](detail::TaskBase& t) { out << format_call_graph(t) << "\n"; });
}

void print_call_graph() { print_call_graph(std::cerr); }

// Iterative (an explicit stack, not recursion): a chain of tens of thousands of tasks awaiting
// each other is a legitimate program, and corio-ps must not overflow the stack of the loop it
// inspects.
std::vector<std::vector<std::uint64_t>> find_await_cycles(const std::vector<TaskInfo>& tasks) {
    std::map<std::uint64_t, const TaskInfo*> by_id;
    for (const auto& t : tasks) by_id[t.id] = &t;
    std::map<std::uint64_t, int> color;  // 0 new, 1 on the current path, 2 done
    std::vector<std::uint64_t> path;
    std::vector<std::size_t> next_edge;  // per entry of path: the next of its awaits to visit
    std::vector<std::vector<std::uint64_t>> cycles;
    auto enter = [&](std::uint64_t id) {
        color[id] = 1;
        path.push_back(id);
        next_edge.push_back(0);
    };
    for (const auto& root : tasks) {
        if (color[root.id] != 0) continue;
        enter(root.id);
        while (!path.empty()) {
            auto it = by_id.find(path.back());
            const std::vector<std::uint64_t>* awaits = it != by_id.end() ? &it->second->awaits : nullptr;
            if (!awaits || next_edge.back() == awaits->size()) {
                color[path.back()] = 2;
                path.pop_back();
                next_edge.pop_back();
                continue;
            }
            std::uint64_t next = (*awaits)[next_edge.back()++];
            if (color[next] == 1) {
                auto from = std::find(path.begin(), path.end(), next);
                cycles.emplace_back(from, path.end());
                cycles.back().push_back(next);
            } else if (color[next] == 0) {
                enter(next);
            }
        }
    }
    return cycles;
}

namespace {

std::string seconds(double s) {
    return s < 0 ? "-" : detail::fixed3(s);
}

// The length of the well-formed UTF-8 sequence at in[i], or 0 (a stray or truncated byte, an
// overlong form, a surrogate, beyond U+10FFFF).
std::size_t utf8_length(const std::string& in, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(in[k]); };
    const unsigned char b = byte(i);
    if (b < 0x80) return 1;
    std::size_t n = b >= 0xf0 && b <= 0xf4 ? 4 : b >= 0xe0 ? (b <= 0xef ? 3 : 0) : b >= 0xc2 ? 2 : 0;
    if (n == 0 || i + n > in.size()) return 0;
    for (std::size_t k = 1; k < n; ++k)
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
    const unsigned char second = byte(i + 1);
    if (b == 0xe0 && second < 0xa0) return 0;  // overlong
    if (b == 0xed && second >= 0xa0) return 0;  // a surrogate
    if (b == 0xf0 && second < 0x90) return 0;  // overlong
    if (b == 0xf4 && second >= 0x90) return 0;  // beyond U+10FFFF
    return n;
}

// JSON strings must be UTF-8: a byte that is not is given as U+FFFD, as Python's
// errors="replace" does.
std::string json_escape(const std::string& in) {
    std::string out;
    for (std::size_t i = 0; i < in.size();) {
        const char c = in[i];
        const std::size_t n = utf8_length(in, i);
        if (n == 0) {
            out += "\\ufffd";
            i += 1;
            continue;
        }
        if (n > 1) {
            out.append(in, i, n);
            i += n;
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
        i += 1;
    }
    return out;
}

unsigned code_point(const std::string& in, std::size_t i, std::size_t n) {
    const auto byte = [&](std::size_t k) { return unsigned(static_cast<unsigned char>(in[i + k])); };
    unsigned c = n == 2 ? byte(0) & 0x1f : n == 3 ? byte(0) & 0x0f : byte(0) & 0x07;
    for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (byte(k) & 0x3f);
    return c;
}

// Well-formed characters a terminal still acts on: the C1 controls (U+0080-U+009F: U+009B is an
// 8-bit CSI), the line and paragraph separators, and the bidirectional overrides and isolates,
// which reorder what follows them on the line.
bool terminal_control(const std::string& in, std::size_t i) {
    const std::size_t n = utf8_length(in, i);
    if (n < 2) return false;
    const unsigned c = code_point(in, i, n);
    return (c >= 0x80 && c <= 0x9f) || (c >= 0x2028 && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

// A name as the table and tree show it, on one line of a terminal: control characters and bytes
// that are not UTF-8 are written as escapes (a name made of a peer's text cannot move the
// cursor, colour the screen or break the row), at most `width` characters, padded to it.
std::string shown_name(const std::string& in, std::size_t width) {
    std::string out;
    std::size_t shown = 0;
    for (std::size_t i = 0; i < in.size() && shown < width;) {
        const std::size_t n = utf8_length(in, i);
        const auto b = static_cast<unsigned char>(in[i]);
        if (n == 1 && b >= 0x20 && b != 0x7f) {
            out += in[i];
        } else if (n > 1 && !terminal_control(in, i)) {
            out.append(in, i, n);
        } else if (n > 1) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", code_point(in, i, n));
            if (shown + std::string_view(buf).size() > width) break;
            out += buf;
            shown += std::string_view(buf).size() - 1;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, b == '\n' ? "\\n" : "\\x%02x", b);
            if (shown + std::string_view(buf).size() > width) break;
            out += buf;
            shown += std::string_view(buf).size() - 1;
        }
        shown += 1;
        i += n ? n : 1;
    }
    if (width != std::string::npos) out.append(width - std::min(width, shown), ' ');
    return out;
}

std::string task_label(const TaskInfo& t) {
    return "Task " + shown_name(t.name, std::string::npos) + " #" + std::to_string(t.id);
}

// Numbers in the classic form whatever the program's global locale (no "1.502" for 1502, no
// decimal comma: JSON and corio-ps's readers expect C's).
std::ostringstream classic_stream() {
    std::ostringstream out;
    out.imbue(std::locale::classic());
    return out;
}

}  // namespace

std::string format_task_table() {
    auto tasks = capture_call_graph();
    std::ostringstream out = classic_stream();
    char line[512];
    std::snprintf(line, sizeof line, "%-6s %-24s %-8s %9s %9s %6s %4s  %s\n", "ID", "NAME", "STATE", "AGE(s)", "BUSY(s)",
                  "STEPS", "CNCL", "AWAITING / CREATED AT");
    out << line;
    for (const auto& t : tasks) {
        std::string where = t.frames.empty() ? "" : t.frames.back().function;
        if (!t.awaiting.empty()) where += " -> " + t.awaiting;
        std::snprintf(line, sizeof line, "%-6llu %s %-8s %9s %9s %6llu %4d  %s\n",
                      static_cast<unsigned long long>(t.id), shown_name(t.name, 24).c_str(), t.state.c_str(), seconds(t.age_s).c_str(),
                      seconds(t.busy_s).c_str(), static_cast<unsigned long long>(t.steps), t.cancelling, where.c_str());
        out << line;
        if (!t.created_file.empty()) out << "       created at " << t.created_file << ":" << t.created_line << "\n";
    }
    for (const auto& cycle : find_await_cycles(tasks)) {
        out << "CYCLE: tasks await each other:";
        for (std::size_t i = 0; i < cycle.size(); ++i) out << (i ? " -> #" : " #") << cycle[i];
        out << "\n";
    }
    return out.str();
}

std::string format_task_tree() {
    auto tasks = capture_call_graph();
    std::map<std::uint64_t, const TaskInfo*> by_id;
    std::map<std::uint64_t, int> awaited_by_count;
    for (const auto& t : tasks) {
        by_id[t.id] = &t;
        for (auto a : t.awaits) ++awaited_by_count[a];
    }
    std::ostringstream out = classic_stream();
    std::set<std::uint64_t> shown;
    // Depth first with an explicit stack (see find_await_cycles); the indentation stops growing
    // at kMaxIndent levels and the depth is written instead, so a deep chain's tree grows with
    // its length, not with its square.
    constexpr std::size_t kMaxIndent = 16;
    std::vector<std::pair<const TaskInfo*, std::size_t>> stack;
    std::vector<std::uint64_t> path;  // the ids from the top down to the task being shown
    auto show = [&](const TaskInfo& top) {
        stack.emplace_back(&top, 0);
        while (!stack.empty()) {
            auto [t, depth] = stack.back();
            stack.pop_back();
            path.resize(depth);
            path.push_back(t->id);
            const std::string indent(4 * std::min(depth, kMaxIndent), ' ');
            out << indent;
            if (depth > kMaxIndent) out << "[depth " << depth << "] ";
            out << task_label(*t) << " (" << t->state;
            if (t->age_s >= 0) out << ", " << seconds(t->age_s) << " s old, " << seconds(t->busy_s) << " s on the loop";
            out << ")\n";
            if (!shown.insert(t->id).second) {
                // Awaited by more than one task (several waiters on one task), or by itself
                // through the tasks above it. (Searched only here, for a task met again: the
                // tree of a long chain stays linear.)
                const bool on_path = std::find(path.begin(), path.end() - 1, t->id) != path.end() - 1;
                out << indent << (on_path ? "    (shown above: a cycle)\n" : "    (shown above)\n");
                continue;
            }
            for (const auto& f : t->frames) out << indent << "    " << f.function << "  " << f.file << ":" << f.line << "\n";
            if (!t->awaiting.empty()) out << indent << "    awaiting " << t->awaiting << "\n";
            for (auto a = t->awaits.rbegin(); a != t->awaits.rend(); ++a)
                if (auto it = by_id.find(*a); it != by_id.end()) stack.emplace_back(it->second, depth + 1);
        }
    };
    for (const auto& t : tasks)
        if (!awaited_by_count.count(t.id)) show(t);
    for (const auto& t : tasks)
        if (!shown.count(t.id)) show(t);  // only cycles are left
    for (const auto& cycle : find_await_cycles(tasks)) {
        out << "CYCLE: tasks await each other:";
        for (std::size_t i = 0; i < cycle.size(); ++i) {
            auto it = by_id.find(cycle[i]);
            out << (i ? " -> " : " ");
            if (it != by_id.end())
                out << task_label(*it->second);
            else
                out << '#' << cycle[i];
        }
        out << "\n";
    }
    return out.str();
}

std::string format_task_json() {
    auto tasks = capture_call_graph();
    std::ostringstream out = classic_stream();
    out << "{\"tasks\":[";
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const auto& t = tasks[i];
        out << (i ? "," : "") << "{\"id\":" << t.id << ",\"name\":\"" << json_escape(t.name) << "\",\"state\":\"" << t.state
            << "\",\"created\":\"" << json_escape(t.created_file);
        if (!t.created_file.empty()) out << ":" << t.created_line;  // "" when not recorded
        out << "\",\"cancelling\":" << t.cancelling
            << ",\"age_s\":" << t.age_s << ",\"busy_s\":" << t.busy_s << ",\"steps\":" << t.steps << ",\"awaiting\":\""
            << json_escape(t.awaiting) << "\",\"awaits\":[";
        for (std::size_t j = 0; j < t.awaits.size(); ++j) out << (j ? "," : "") << t.awaits[j];
        out << "],\"frames\":[";
        for (std::size_t j = 0; j < t.frames.size(); ++j)
            out << (j ? "," : "") << "{\"function\":\"" << json_escape(t.frames[j].function) << "\",\"file\":\""
                << json_escape(t.frames[j].file) << "\",\"line\":" << t.frames[j].line << "}";
        out << "]}";
    }
    out << "],\"cycles\":[";
    auto cycles = find_await_cycles(tasks);
    for (std::size_t i = 0; i < cycles.size(); ++i) {
        out << (i ? "," : "") << "[";
        for (std::size_t j = 0; j < cycles[i].size(); ++j) out << (j ? "," : "") << cycles[i][j];
        out << "]";
    }
    out << "]}\n";
    return out.str();
}

}  // namespace corio
