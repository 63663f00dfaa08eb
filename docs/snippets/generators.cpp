// Async generators (AsyncGenerator<T>) and class-based async iterators.
#include <corio/corio.hpp>

#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int open_connections = 0;
std::vector<std::string> processed;

void process(const std::string& row) { processed.push_back(row); }

// A driver's cursor: a class-based async iterator itself.
class Cursor {
public:
    explicit Cursor(std::vector<std::string> rows) : rows_(std::move(rows)) {}
    corio::Coro<std::optional<std::string>> next() {
        co_await corio::sleep(1ms);  // one row per round trip
        if (at_ == rows_.size()) co_return std::nullopt;
        co_return rows_[at_++];
    }

private:
    std::vector<std::string> rows_;
    std::size_t at_ = 0;
};

struct Connection {
    corio::Coro<Cursor> execute(std::string) {
        co_await corio::sleep(1ms);
        co_return Cursor({"alice", "bob", "carol"});
    }
    corio::Coro<> close() {
        --open_connections;
        co_return;
    }
};

corio::Coro<Connection> connect_to_db() {
    co_await corio::sleep(1ms);
    ++open_connections;
    co_return Connection{};
}

// [async-generator]
corio::AsyncGenerator<std::string> stream_rows(std::string query) {
    Connection conn = co_await connect_to_db();         // async with db_connection() as conn:
    std::exception_ptr error;
    try {
        Cursor cursor = co_await conn.execute(query);    //     cursor = await conn.execute(query)
        while (auto row = co_await cursor.next())        //     async for row in cursor:
            co_yield *row;                               //         yield row
    } catch (...) {
        error = std::current_exception();  // GeneratorExit too, when the consumer stops early
    }
    co_await conn.close();
    if (error) std::rethrow_exception(error);
}

corio::Coro<> consume_all() {
    auto rows = stream_rows("SELECT * FROM users");
    while (auto row = co_await rows.next())  // async for row in stream_rows(...):
        process(*row);                       //     process(row)
}
// [end async-generator]

// [early-exit]
corio::Coro<std::string> first_row() {
    auto rows = stream_rows("SELECT * FROM users");
    std::optional<std::string> first = co_await rows.next();
    co_await rows.aclose();  // runs the generator's cleanup now: the connection is closed
    co_return first.value_or("");
}
// [end early-exit]

// [async-iterator]
class Countdown {
public:
    explicit Countdown(int start) : current_(start) {}

    // __anext__: the next value, or std::nullopt for StopAsyncIteration.
    corio::Coro<std::optional<int>> next() {
        if (current_ <= 0) co_return std::nullopt;
        current_ -= 1;
        co_await corio::sleep(10ms);
        co_return current_ + 1;
    }

private:
    int current_;
};

corio::Coro<std::vector<int>> count_down() {
    std::vector<int> seen;
    Countdown countdown(3);
    while (auto n = co_await countdown.next())  // async for n in Countdown(3):
        seen.push_back(*n);
    co_return seen;                             // {3, 2, 1}
}
// [end async-iterator]

corio::Coro<int> main_coro() {
    co_await consume_all();
    std::string first = co_await first_row();
    std::vector<int> seen = co_await count_down();
    std::cout << processed.size() << " rows, first " << first << ", " << open_connections
              << " connections open, countdown " << seen.size() << '\n';
    bool ok = processed == std::vector<std::string>{"alice", "bob", "carol"} && first == "alice" &&
              open_connections == 0 && seen == std::vector<int>{3, 2, 1};
    co_return ok ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
