//! Just enough of the i8042 keyboard controller for a guest to reset the
//! machine: command 0xFE on port 0x64 (Linux's `reboot=k`). Reads show an
//! idle controller with nothing to read.

/// What a guest write to the controller asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum I8042Action {
    None,
    Reset,
}

const CMD_RESET_CPU: u8 = 0xfe;

/// A write of `value` to `port` (0x60 or 0x64).
pub fn write(port: u16, value: u8) -> I8042Action {
    if port == crate::layout::I8042_COMMAND_PORT && value == CMD_RESET_CPU {
        I8042Action::Reset
    } else {
        I8042Action::None
    }
}

/// A read of `port`: status 0 (buffers empty), data 0.
pub fn read(_port: u16) -> u8 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_only_on_command_port() {
        assert_eq!(write(0x64, 0xfe), I8042Action::Reset);
        assert_eq!(write(0x60, 0xfe), I8042Action::None);
        assert_eq!(write(0x64, 0xd1), I8042Action::None);
    }
}
