// Seed "Async generators": rows streamed from a query inside an async context manager.
//   async def stream_rows(query):
//       async with db_connection() as conn:
//           cursor = await conn.execute(query)
//           async for row in cursor: yield row
#include <corio/corio.hpp>

#include <iostream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int open_connections = 0;

struct Cursor {
    std::vector<std::string> rows;
    std::size_t at = 0;
    // One row per call, as a driver fetching from the network would.
    corio::Coro<std::optional<std::string>> fetchone() {
        co_await corio::sleep(5ms);
        if (at == rows.size()) co_return std::nullopt;
        co_return rows[at++];
    }
};

struct Connection {
    corio::Coro<Cursor> execute(std::string) {
        co_await corio::sleep(5ms);
        co_return Cursor{{"alice", "bob", "carol"}};
    }
    corio::Coro<> aclose() {
        --open_connections;
        co_return;
    }
};

corio::Coro<Connection> db_connection() {
    co_await corio::sleep(5ms);
    ++open_connections;
    co_return Connection{};
}

corio::AsyncGenerator<std::string> stream_rows(std::string query) {
    Connection conn = co_await db_connection();
    std::exception_ptr error;
    try {
        Cursor cursor = co_await conn.execute(query);
        while (auto row = co_await cursor.fetchone()) co_yield *row;
    } catch (...) {
        error = std::current_exception();  // GeneratorExit too, when the consumer stops early
    }
    co_await conn.aclose();
    if (error) std::rethrow_exception(error);
}

corio::Coro<int> main_coro() {
    std::vector<std::string> seen;
    auto rows = stream_rows("SELECT * FROM users");
    while (auto row = co_await rows.next()) seen.push_back(*row);  // async for row in ...
    std::cout << "all rows: " << seen.size() << ", connections open: " << open_connections << "\n";

    // Leaving early: aclose() runs the generator's cleanup.
    auto partial = stream_rows("SELECT * FROM users");
    auto first = co_await partial.next();
    const int open_midway = open_connections;  // the generator holds its connection: 1
    std::cout << "first row " << *first << ", connections open: " << open_midway << "\n";
    co_await partial.aclose();
    std::cout << "after aclose, connections open: " << open_connections << "\n";
    co_return (seen.size() == 3 && open_midway == 1 && open_connections == 0) ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
