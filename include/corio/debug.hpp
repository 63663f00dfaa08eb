// Introspection: the await chain of every task (asyncio.print_call_graph / capture_call_graph).
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace corio {

namespace detail {
class TaskBase;
}

struct FrameInfo {
    std::string function;
    std::string file;
    std::uint32_t line = 0;
};

struct TaskInfo {
    std::uint64_t id = 0;
    std::string name;
    std::string state;           // "pending" or "running"
    std::string created_file;
    std::uint32_t created_line = 0;
    std::vector<FrameInfo> frames;  // outermost coroutine first
    std::string awaiting;           // what the innermost frame waits on, when known
    int cancelling = 0;
};

// Every pending task of the running loop with its await chain.
std::vector<TaskInfo> capture_call_graph();
// The same, printed (to std::cerr unless told otherwise).
void print_call_graph();
void print_call_graph(std::ostream& out);

// The await chain of one task, as text (used in diagnostics).
std::string format_call_graph(const detail::TaskBase& task);

namespace detail {
TaskInfo describe_task(const TaskBase& task);
void report_slow_step(const TaskBase& task, std::chrono::nanoseconds took) noexcept;
}  // namespace detail

}  // namespace corio
