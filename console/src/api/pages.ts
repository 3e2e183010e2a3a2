// Every page of a paged list of the API, read one after another until its token runs out.

export async function everyPage<T>(read: (token: string | null) => Promise<{ items: T[]; next_token: string | null }>): Promise<T[]> {
  const found: T[] = []
  let token: string | null = null
  do {
    const page = await read(token)
    found.push(...page.items)
    token = page.next_token
  } while (token)
  return found
}
