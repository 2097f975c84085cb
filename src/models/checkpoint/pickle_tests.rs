//! The pickle machine on hand-written programs: what torch.save writes, and hostile ones.

use super::*;

fn no_storage(_: &Value) -> Res<Value> {
    Err("no storages here".into())
}

#[test]
fn builds_dicts_lists_and_opaque_objects() {
    // pickle.dumps({'a': [1, 2**40], 'b': (1.5, None, True)}, protocol=2) by hand, plus an
    // opaque object: NEWOBJ of __main__.Foo with state {'x': 'y'}.
    let mut p = vec![
        0x80, 2, b'}', b'q', 0, b'(', 0x8c, 1, b'a', b']', b'q', 1, b'(', b'K', 1,
    ];
    p.extend([0x8a, 6, 0, 0, 0, 0, 0, 1, b'e']);
    p.extend([0x8c, 1, b'b', b'G']);
    p.extend(1.5f64.to_be_bytes());
    p.extend([b'N', 0x88, 0x87]);
    p.extend(b"c__main__\nFoo\n");
    p.extend([b')', 0x81, b'}', 0x8c, 1, b'x', 0x8c, 1, b'y', b's', b'b']);
    p.extend([b'0', b'u', b'h', 1, b'0', b'.']);
    let v = load(&p, &mut no_storage).unwrap();
    let a = v.get("a").unwrap().as_seq().unwrap();
    assert_eq!(
        a.iter().map(|x| x.as_int()).collect::<Vec<_>>(),
        [Some(1), Some(1 << 40)]
    );
    let b = v.get("b").unwrap().as_seq().unwrap();
    assert!(matches!(b[0], Value::Float(f) if f == 1.5));
    assert!(matches!(b[1], Value::None));
    assert!(matches!(b[2], Value::Bool(true)));
}

#[test]
fn memo_shares_containers() {
    // [] memoized, fetched, appended to through the fetched reference.
    let p = [0x80, 2, b']', b'q', 0, b'h', 0, b'K', 7, b'a', b'0', b'.'];
    let v = load(&p, &mut no_storage).unwrap();
    assert_eq!(v.as_seq().unwrap()[0].as_int(), Some(7));
}

#[test]
fn bad_programs_are_errors_with_offsets() {
    let cases: [(&[u8], &str); 5] = [
        (&[0x80, 2, 0xff], "unsupported pickle opcode 0xff"),
        (&[0x80, 2, b'K'], "ends inside"),
        (&[0x80, 2, b'K', 1], "without a STOP"),
        (&[0x80, 2, b'h', 3, b'.'], "memo key 3"),
        (
            &[0x80, 2, b'X', 0xff, 0xff, 0xff, 0x7f],
            "runs past the end",
        ),
    ];
    for (p, want) in cases {
        let e = load(p, &mut no_storage).unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want})");
    }
    let e = load(&[0x80, 2, 0xff], &mut no_storage).unwrap_err();
    assert_eq!(e.offset, 2);
}

/// `c{module}\n{name}\n`.
fn global(p: &mut Vec<u8>, module: &str, name: &str) {
    p.extend(format!("c{module}\n{name}\n").bytes());
}

#[test]
fn doubling_through_the_memo_fails_at_the_opcode_that_crosses_the_budget() {
    // t0 = (); t(k+1) = (tk, tk), each memoized; a dozen bytes per level.
    let mut p = vec![0x80, 2, b')', 0x94];
    let mut at = Vec::new();
    for k in 0..40u32 {
        p.push(b'j');
        p.extend(k.to_le_bytes());
        p.push(b'j');
        p.extend(k.to_le_bytes());
        at.push(p.len());
        p.extend([0x86, 0x94]);
    }
    p.push(b'.');
    let e = load(&p, &mut no_storage).unwrap_err();
    // t22 is the first with more than 2^22 nodes.
    assert_eq!(e.offset, at[21], "{e}");
    assert!(e.message.contains("shares through the memo"), "{e}");
}

#[test]
fn a_list_holding_itself_loads_prints_bounded_and_is_freed() {
    // l = []; l.append(l); l.append(l)
    let p = [0x80, 2, b']', 0x94, b'h', 0, b'a', b'h', 0, b'a', b'.'];
    let v = load(&p, &mut no_storage).unwrap();
    let Value::List(l) = &v.root else {
        panic!("{v:?}")
    };
    let weak = Rc::downgrade(l);
    let shown = format!("{v:?}");
    assert!(shown.starts_with("[[[") && shown.len() < 400, "{shown}");
    drop(v);
    assert!(weak.upgrade().is_none(), "the self-holding list leaked");
}

#[test]
fn tensor_subclass_rebuilds_that_loop_are_refused() {
    // G = torch._tensor._rebuild_from_type_v2; l = [G, None, l]; G(*l): each call's inner
    // arguments are `l` again.
    let mut p = vec![0x80, 2];
    global(&mut p, "torch._tensor", "_rebuild_from_type_v2");
    p.extend([0x94, b']', 0x94, b'(', b'h', 0, b'N', b'h', 1, b'e']);
    p.extend([b'h', 0, b'(', b'h', 0, b'N', b'h', 1, b't', b'R', b'.']);
    let e = load(&p, &mut no_storage).unwrap_err();
    assert!(e.message.contains("nested more than 8"), "{e}");
}

#[test]
fn copying_a_large_list_into_calls_again_and_again_is_bounded() {
    // A 1000-element list memoized, then passed as the arguments of 5000 calls.
    let mut p = vec![0x80, 2, b']', 0x94, b'('];
    for _ in 0..1000 {
        p.extend([b'K', 1]);
    }
    p.push(b'e');
    global(&mut p, "x", "f");
    p.push(0x94);
    for _ in 0..5000 {
        p.extend([b'h', 1, b'h', 0, b'R', b'0']);
    }
    p.push(b'.');
    let e = load(&p, &mut no_storage).unwrap_err();
    assert!(e.message.contains("copied into call arguments"), "{e}");
}

#[test]
fn a_dict_of_many_keys_fills_in_linear_time() {
    // {0: None, 1: None, ..., 299999: None} in one SETITEMS, then key 7 set again.
    let n = 300_000u32;
    let mut p = vec![0x80, 2, b'}', b'('];
    for k in 0..n {
        p.push(b'J');
        p.extend(k.to_le_bytes());
        p.push(b'N');
    }
    p.extend([b'u', b'K', 7, 0x88, b's', b'.']);
    let start = std::time::Instant::now();
    let v = load(&p, &mut no_storage).unwrap();
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    let Value::Dict(d) = &v.root else {
        panic!("{v:?}")
    };
    let d = d.borrow();
    assert_eq!(d.len(), n as usize);
    assert!(matches!(d.entries()[7].1, Value::Bool(true)));
}
