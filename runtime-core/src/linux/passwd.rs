//! Looking a user up in an /etc/passwd text (the container's, for $HOME;
//! the host's, for the `owner` runc shows). `name:password:uid:gid:gecos:home:shell`.

/// One line of /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub home: &'a str,
    pub shell: &'a str,
}

fn parse(line: &str) -> Option<Entry<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 {
        return None;
    }
    Some(Entry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5], shell: f[6] })
}

/// The first well-formed entry of `text` with this uid.
pub fn by_uid(text: &str, uid: u32) -> Option<Entry<'_>> {
    text.lines().filter_map(parse).find(|e| e.uid == uid)
}

/// The first well-formed entry of `text` with this name.
pub fn by_name<'a>(text: &'a str, name: &str) -> Option<Entry<'a>> {
    text.lines().filter_map(parse).find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      broken line\n\
                      bad:x:notanumber:1:::\n\
                      tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
                      twin:x:1000:7:second:/elsewhere:/bin/false\n";

    #[test]
    fn lookups_skip_malformed_lines_and_take_the_first_match() {
        let t = by_uid(PW, 1000).unwrap();
        assert_eq!((t.name, t.gid, t.home, t.shell), ("tester", 1000, "/home/tester", "/bin/sh"));
        assert_eq!(by_name(PW, "root").unwrap().home, "/root");
        assert_eq!(by_name(PW, "twin").unwrap().gid, 7);
        assert!(by_uid(PW, 4242).is_none());
        assert!(by_name(PW, "bad").is_none());
    }
}
