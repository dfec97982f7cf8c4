use super::*;
use crate::fleet::pattern::select;

const INI: &str = r#"
# Production web servers and their databases.
bastion.example.org

[web]
web[01:03].example.org ansible_user=deploy
shop.example.org:2222 ansible_host=203.0.113.7 vigil_root=/srv/images/shop

[db]
db-[a:b].example.org

[prod:children]
web
db

[prod:vars]
ansible_become=yes
ansible_ssh_common_args='-o ProxyJump="jump user@bastion.example.org"'

[web:vars]
ansible_port=2200
"#;

fn names(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn ini_groups_children_ranges_ports_and_vars() {
    let inv = Inventory::parse(INI, "hosts.ini").unwrap();
    assert_eq!(
        names(inv.hosts()),
        [
            "bastion.example.org",
            "web01.example.org",
            "web02.example.org",
            "web03.example.org",
            "shop.example.org",
            "db-a.example.org",
            "db-b.example.org"
        ]
    );
    assert_eq!(names(&inv.group_hosts("prod")).len(), 6, "children's hosts are the parent's");
    assert_eq!(names(&inv.group_hosts("ungrouped")), ["bastion.example.org"]);
    assert_eq!(inv.group_hosts("all").len(), 7);

    let web = inv.target("web02.example.org").unwrap();
    assert_eq!(web.address, "web02.example.org");
    assert_eq!(web.user.as_deref(), Some("deploy"));
    assert_eq!(web.port, Some(2200), "[web:vars] applies");
    assert!(web.become_root, "[prod:vars] reaches hosts of its children");
    assert_eq!(web.ssh_args, ["-o", "ProxyJump=jump user@bastion.example.org"]);

    let shop = inv.target("shop.example.org").unwrap();
    assert_eq!(shop.address, "203.0.113.7");
    assert_eq!(shop.port, Some(2222), "the host's own port wins over its group's");
    assert_eq!(shop.root.as_deref(), Some("/srv/images/shop"));

    let bastion = inv.target("bastion.example.org").unwrap();
    assert_eq!((bastion.port, bastion.become_root, bastion.user), (None, false, None));
}

#[test]
fn yaml_and_ansible_inventory_json_give_the_same_targets() {
    let yaml = r#"
all:
  vars:
    ansible_user: admin
  children:
    web:
      hosts:
        web[1:2].example.org:
          ansible_port: 2201
        shop.example.org:
          vigil_path: /opt/vigil/vigil
          ansible_become_password: !vault |
            $ANSIBLE_VAULT;1.1;AES256
            6134
      vars:
        ansible_become: true
    db:
      hosts:
        db1.example.org:
"#;
    let json = r#"{
      "_meta": {"hostvars": {
        "web1.example.org": {"ansible_port": 2201, "ansible_user": "admin", "ansible_become": true},
        "web2.example.org": {"ansible_port": 2201, "ansible_user": "admin", "ansible_become": true},
        "shop.example.org": {"ansible_user": "admin", "ansible_become": true, "vigil_path": "/opt/vigil/vigil",
                             "ansible_become_password": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6134"}},
        "db1.example.org": {"ansible_user": "admin"}
      }},
      "all": {"children": ["ungrouped", "web", "db"]},
      "web": {"hosts": ["web1.example.org", "web2.example.org", "shop.example.org"]},
      "db": {"hosts": ["db1.example.org"]}
    }"#;
    let y = Inventory::parse(yaml, "hosts.yml").unwrap();
    let j = Inventory::parse(json, "list.json").unwrap();
    assert_eq!(y.hosts(), j.hosts());
    for h in y.hosts() {
        assert_eq!(y.target(h).unwrap(), j.target(h).unwrap(), "{h}");
    }
    let shop = y.target("shop.example.org").unwrap();
    assert_eq!(shop.vigil_path.as_deref(), Some("/opt/vigil/vigil"));
    assert!(shop.become_root);
    for inv in [&y, &j] {
        assert_eq!(inv.unsupported.len(), 1, "{:?}", inv.unsupported);
        assert!(inv.unsupported[0].contains("host shop.example.org: ansible_become_password is vault-encrypted"));
        let all = inv.vars("shop.example.org");
        assert!(!all.contains_key("ansible_become_password"), "a vault value is never kept");
        assert!(!all.values().any(|v| v.to_string().contains("ANSIBLE_VAULT")));
    }
}

#[test]
fn host_vars_and_group_vars_beside_the_inventory_override_it() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("hosts"), INI).unwrap();
    std::fs::create_dir_all(t.path().join("group_vars/web")).unwrap();
    std::fs::create_dir_all(t.path().join("host_vars")).unwrap();
    std::fs::write(t.path().join("group_vars/all.yml"), "ansible_user: ops\n").unwrap();
    std::fs::write(t.path().join("group_vars/web/ssh.yml"), "ansible_port: 2300\n").unwrap();
    std::fs::write(t.path().join("host_vars/web01.example.org"), "---\nansible_host: 10.0.0.11\nansible_port: 22\n")
        .unwrap();
    std::fs::write(t.path().join("host_vars/db-a.example.org.yml"), "$ANSIBLE_VAULT;1.1;AES256\n3031\n").unwrap();
    let inv = Inventory::load(&t.path().join("hosts")).unwrap();
    assert_eq!(inv.unsupported.len(), 1, "{:?}", inv.unsupported);
    assert!(inv.unsupported[0].contains("db-a.example.org.yml is vault-encrypted"), "{:?}", inv.unsupported);
    let w1 = inv.target("web01.example.org").unwrap();
    assert_eq!((w1.address.as_str(), w1.port), ("10.0.0.11", Some(22)), "host_vars win");
    assert_eq!(w1.user.as_deref(), Some("deploy"), "the inventory's host value beats group_vars/all");
    let w2 = inv.target("web02.example.org").unwrap();
    assert_eq!(w2.port, Some(2300), "group_vars/web/ beats [web:vars]");
    assert_eq!(inv.target("db-a.example.org").unwrap().user.as_deref(), Some("ops"), "group_vars/all applies");
}

#[test]
fn an_executable_inventory_script_is_run_with_list() {
    let t = tempfile::tempdir().unwrap();
    let script = t.path().join("inventory.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = --list ] || exit 3\necho '{\"web\": [\"a.example.org\", \"b.example.org\"], \"_meta\": {\"hostvars\": {\"a.example.org\": {\"ansible_port\": \"2222\"}}}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let inv = Inventory::load(&script).unwrap();
    assert_eq!(names(inv.hosts()), ["a.example.org", "b.example.org"]);
    assert_eq!(inv.target("a.example.org").unwrap().port, Some(2222));

    std::fs::write(&script, "#!/bin/sh\necho 'cannot reach the cloud API' >&2\nexit 1\n").unwrap();
    let err = Inventory::load(&script).unwrap_err().to_string();
    assert!(err.contains("--list` failed") && err.contains("cannot reach the cloud API"), "{err}");
}

#[test]
fn malformed_inventories_say_where_and_what() {
    for (text, want) in [
        ("[web\nhost1\n", "hosts.ini:1: `[web` is not a section header"),
        ("[web:bogus]\n", "hosts.ini:1: unknown section kind `:bogus`"),
        ("[web]\nhost1 ansible_port\n", "hosts.ini:2: `ansible_port` after the host name is not `name=value`"),
        ("[web]\nweb[1:x].example.org\n", "hosts.ini:2: `web[1:x].example.org`: `[1:x]` is not a range"),
        ("[web]\nweb[9:1]\n", "is empty or over 100,000 hosts"),
        ("[web:vars]\nnovalue\n", "hosts.ini:2: `novalue` in [web:vars] is not `name=value`"),
        ("[web]\nhost1 x='unclosed\n", "hosts.ini:2: unclosed `'`"),
    ] {
        let e = Inventory::parse(text, "hosts.ini").unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let e = Inventory::parse("all:\n  hosts: [a, b]\n", "h.yml").unwrap_err().to_string();
    assert!(e.contains("`hosts` must be a mapping"), "{e}");
    let e = Inventory::parse("{\"web\": 3}", "l.json").unwrap_err().to_string();
    assert!(e.contains("group web: expected a list of hosts or an object"), "{e}");

    let inv = Inventory::parse(
        "[web]\nh1 ansible_port=99999\nh2 ansible_host=-oProxyCommand=x\nh3 ansible_become=maybe\n",
        "i",
    )
    .unwrap();
    assert!(inv.target("h1").unwrap_err().to_string().contains("ansible_port is not a port number"));
    assert!(inv.target("h2").unwrap_err().to_string().contains("would be read as an ssh option"));
    assert!(inv.target("h3").unwrap_err().to_string().contains("ansible_become is not a boolean"));
}

#[test]
fn limit_patterns_select_as_ansible_does() {
    let inv = Inventory::parse(INI, "hosts.ini").unwrap();
    let sel = |p: &str| select(&inv, p).map(|v| v.join(" "));
    assert_eq!(sel("all").unwrap().split(' ').count(), 7);
    assert_eq!(sel("web:&prod").unwrap(), "web01.example.org web02.example.org web03.example.org shop.example.org");
    assert_eq!(sel("prod:!db*").unwrap(), "web01.example.org web02.example.org web03.example.org shop.example.org");
    assert_eq!(sel("!web").unwrap(), "bastion.example.org db-a.example.org db-b.example.org", "exclusion alone");
    assert_eq!(sel("web0*").unwrap(), "web01.example.org web02.example.org web03.example.org");
    assert_eq!(sel("~web0[12]").unwrap(), "web01.example.org web02.example.org");
    assert_eq!(sel("db,bastion.example.org").unwrap(), "bastion.example.org db-a.example.org db-b.example.org");
    assert_eq!(sel("web[0]").unwrap(), "web01.example.org");
    assert_eq!(sel("web[-1]").unwrap(), "shop.example.org");
    assert_eq!(sel("web[1:3]").unwrap(), "web02.example.org web03.example.org");
    assert_eq!(sel("web[2:]").unwrap(), "web03.example.org shop.example.org");
    let e = select(&inv, "wbe").unwrap_err().to_string();
    assert!(e.contains("no host or group matches `wbe`") && e.contains("web"), "{e}");
    assert!(select(&inv, "~web(").unwrap_err().to_string().contains("not a valid regular expression"));
}

#[test]
fn shell_words_split_as_a_shell_would() {
    assert_eq!(shell_words(r#"-o 'A B' "-o C=\"d e\"" f\ g"#).unwrap(), ["-o", "A B", "-o C=\"d e\"", "f g"]);
    assert!(shell_words("'x").is_err());
}
