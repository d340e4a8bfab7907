-- What MongoDB must hold, computed from MariaDB's tables after changes.sql:
-- one line per document, `author` or `post`, a tab, its row as JSON. The
-- join, the filter on hidden comments, their order and limit are done here;
-- the run script only gives the rows mapping.json's shape (nesting, renames).
USE blog;
SELECT 'author', JSON_OBJECT('id', id, 'name', name, 'email', email, 'twitter', twitter)
FROM authors ORDER BY id;
SELECT 'post', JSON_OBJECT(
    'id', p.id, 'title', p.title, 'body', p.body, 'published', p.published, 'rating', p.rating,
    'posted', DATE_FORMAT(p.posted_at, '%Y-%m-%dT%H:%i:%s.%f'),
    'author_name', a.name, 'author_email', a.email,
    'comments', (SELECT JSON_ARRAYAGG(JSON_OBJECT('who', c.who, 'text', c.text,
                                                  'created_at', DATE_FORMAT(c.created_at, '%Y-%m-%dT%H:%i:%s.%f'))
                                      ORDER BY c.created_at, c.id LIMIT 50)
                 FROM comments c WHERE c.post_id = p.id AND c.hidden = 0))
FROM posts p LEFT JOIN authors a ON a.id = p.author_id ORDER BY p.id;
