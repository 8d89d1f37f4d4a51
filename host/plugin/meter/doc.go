// Package meter instruments WebAssembly modules so that the work they do is
// counted deterministically: the same module given the same input stops at
// the same instruction on every machine, whatever its speed.
//
// Instrument rewrites a module's bytes (it never changes their meaning
// otherwise) and returns new bytes that are what the host compiles:
//
//   - Fuel. A mutable i64 global, exported as FuelExport, holds the fuel
//     left. The host sets it before a call and reads it after. Code is cut
//     into metered segments; at the start of each one the segment's cost is
//     subtracted. At loop starts and function entries the code then checks
//     the counter and executes `unreachable` if it is negative; elsewhere it
//     does not (a compare and a branch per segment would cost more than the
//     subtraction), so the host must check the counter after every call and
//     in every host function it provides. Between two checks the code runs
//     forward only, so it cannot run long. The host tells "out of fuel" from
//     any other trap by the counter: it is negative only once fuel ran out.
//   - Call-stack budget (Options.StackSlots). A second i64 global, exported
//     as StackExport, is charged each function's frame size (FrameSlots) on
//     entry and credited back on return; below zero the function executes
//     `unreachable`. Recursion is therefore stopped at the same depth on every
//     machine, long before the engine's own stack limit (which depends on the
//     architecture's frame layout) and its memory cost.
//   - Memory cap (Options.MemoryPages). The maximum of the module's memory is
//     lowered to the cap (or set, when the module declares none), so the cap
//     is part of the module that every node compiles.
//
// # Segments and costs
//
// A segment starts at a function's entry, at the first instruction of every
// loop body, of every if and else arm, and after the end of a block or if
// that a branch targets. Every other instruction belongs to the segment that
// encloses it, including the code after a nested block or loop that no
// branch targets and the code after a br_if: that code runs at most once
// each time its segment starts, because wasm control flow only goes
// backwards through a loop's start. A segment's charge is therefore an upper
// bound of what runs until the next charge, and an exact count when no
// branch leaves early. Loop bodies and function entries charge at least 1,
// so every iteration and every call costs fuel.
//
// Costs are in units of about one simple instruction: 1 for each
// instruction, 0 for block, loop, else, end and nop, CallCost for call and
// call_indirect, and for the instructions whose work depends on an operand
// a base cost plus a charge computed at run time from the operand, just
// before the instruction: memory.grow costs GrowPageCost per page asked for,
// memory.copy, memory.fill and memory.init one unit per BulkBytesPerFuel
// bytes, table.grow, table.fill, table.copy and table.init one unit per
// element.
//
// The decoder knows every instruction of WebAssembly 2.0 as wazero's
// CoreFeaturesV2 accepts them (MVP, sign extension, non-trapping
// float-to-int, bulk memory, reference types, multi-value, SIMD); a module
// with any other opcode is refused with ErrUnsupported. Instrument is
// deterministic: the same bytes and Options give the same output.
package meter
